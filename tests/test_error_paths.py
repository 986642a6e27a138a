"""Every project error reaches a user as a message, never as a driver error or a traceback.

Each error is caused for real, on both backends where the backend matters:
missing and existing scenarios, invalid, truncated, foreign and future
documents, bad SQL, a DuckDB file held by another process, a store at a
schema revision newer than the code, a database that cannot be reached.

- The CLI (``healthsim_state.interfaces.cli.main``, as the console script runs it)
  must exit with status 1 and print exactly one line on stderr, of the form
  ``error: ...`` that the CLI keeps for project errors (anything else is
  printed as ``error (ExceptionClass): ...``). Run again with ``--debug``,
  the command must raise the expected project error class: proof that the
  case is the error it claims to be.
- The MCP server (``healthsim mcp`` through the SDK's stdio client) must
  answer with a tool error (``isError``) whose text has no SQL, no
  traceback and no driver or exception class name, and must not log a
  crash (the server logs a traceback for anything but a project error).

Bad command-line arguments (usage errors) are tested in tests/test_cli*.py.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from mcp import ClientSession, StdioServerParameters, stdio_client

from healthsim_models import (
    ConfigurationError,
    DocumentError,
    InvalidArgumentError,
    NotAStoreError,
    QueryError,
    ReferenceDataError,
    ScenarioExistsError,
    ScenarioNotFoundError,
    SchemaVersionError,
    ValidationError,
    create_store_engine,
    session_scope,
)
from healthsim_models.errors import HealthSimError
from healthsim_state import ScenarioRepository
from healthsim_state.formats.json import export_scenario
from healthsim_state.interfaces.cli import main
from tests.conftest import BACKENDS, throwaway_postgresql_database
from tests.helpers import FIXTURES

HEALTHSIM = Path(sys.executable).with_name("healthsim")

PATIENT = {
    "id": "PAT-1",
    "mrn": "MRN-1",
    "name": {"given_name": "Ada", "family_name": "Lovelace"},
    "birth_date": "1980-02-03",
    "gender": "F",
}
ENCOUNTER = {
    "encounter_id": "E-1",
    "patient_mrn": "MRN-1",
    "class_code": "O",
    "status": "finished",
    "admission_time": "2024-01-02T10:00:00Z",
}
#: Three problems: the CLI shows the first and says how many lines follow.
INVALID_ENTITIES = {
    "patient": [{**PATIENT, "gender": "X"}, {**PATIENT, "id": "PAT-2", "mrn": "MRN-2", "birth_date": "1980-02-30"}],
    "encounter": [{**ENCOUNTER, "patient_mrn": "MRN-404"}],
}
FUTURE_REVISION = "ffff_from_a_newer_healthsim"

#: What no user may see: driver and exception class names, SQL, tracebacks, internal table names.
LEAKS = re.compile(
    r"Traceback|File \"|\[SQL:|sqlalche\.me|Background on this error|\bpsycopg\.|duckdb_engine|\bsqlalchemy\."
    r"|\b_duckdb\b|\b[A-Z][A-Za-z]*(?:Error|Exception)\b|\b_hs_\w+|\bINSERT INTO\b|\bDELETE FROM \w+ WHERE\b"
)


def assert_no_leak(text: str) -> None:
    leak = LEAKS.search(text)
    assert leak is None, f"{leak.group(0)!r} leaked in: {text!r}"


@dataclass
class Prepared:
    """A store on one backend holding the scenario 'present', and documents to feed it."""

    backend: str
    url: str
    future_url: str  # a store at a schema revision newer than the code
    folder: Path

    def doc(self, name: str) -> str:
        return str(self.folder / name)


def _document(name: str, entities: dict[str, Any], **header: Any) -> dict[str, Any]:
    return {"schema_version": "1.0", "name": name, "description": None, "tags": [], **header, "entities": entities}


def _write_documents(folder: Path, present: bytes) -> None:
    (folder / "present.json").write_bytes(present)
    (folder / "truncated.json").write_bytes(present[: len(present) // 2])
    (folder / "not-json.json").write_text("this is not JSON\n")
    (folder / "empty.json").write_text("")
    (folder / "invalid.json").write_text(json.dumps(_document("invalid-doc", INVALID_ENTITIES)))
    (folder / "future.json").write_text(
        json.dumps({**_document("future-doc", {"patient": [PATIENT]}), "schema_version": "9.0"})
    )
    (folder / "unknown-type.json").write_text(json.dumps(_document("unknown-type-doc", {"patientz": []})))
    (folder / "bad-header.json").write_text(json.dumps(_document("bad-header-doc", {}, description={"a": 1})))
    # A lone surrogate, as a JSON escape: JSON allows it, no database can store it.
    (folder / "surrogate.json").write_text(
        json.dumps(
            _document(
                "surrogate-doc",
                {"patient": [{**PATIENT, "name": {"given_name": "Ada", "family_name": "Bad\udcffName"}}]},
            )
        )
    )
    shutil.copy(FIXTURES / "legacy-v1-scenario.json", folder / "legacy-v1.json")
    (folder / "legacy-broken").mkdir()
    (folder / "legacy-broken" / "broken.json").write_text('{"metadata": {"workspace_id": ')
    (folder / "a-folder").mkdir()
    (folder / "exists.json").write_text("{}")
    shutil.copy(FIXTURES / "reference" / "svi_county_bad_value.csv", folder / "SVI_2022_US_county.csv")


def _prepare(url: str, future_url: str, folder: Path, backend: str) -> Prepared:
    engine = create_store_engine(url)
    try:
        with session_scope(engine) as session:
            ScenarioRepository(session).save("present", {"patient": [PATIENT], "encounter": [ENCOUNTER]})
        with session_scope(engine) as session:
            export_scenario(session, "present", folder / "exported.json")
    finally:
        engine.dispose()
    _write_documents(folder, (folder / "exported.json").read_bytes())
    future = create_store_engine(future_url)
    try:
        with future.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE_REVISION})
    finally:
        future.dispose()
    return Prepared(backend, url, future_url, folder)


@pytest.fixture(scope="module", params=BACKENDS)
def prepared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    folder = tmp_path_factory.mktemp(f"errors-{request.param}")
    with contextlib.ExitStack() as stack:
        if request.param == "duckdb":
            url, future_url = f"duckdb:///{folder / 'store.duckdb'}", f"duckdb:///{folder / 'future.duckdb'}"
        else:
            url = stack.enter_context(throwaway_postgresql_database())
            future_url = stack.enter_context(throwaway_postgresql_database())
        yield _prepare(url, future_url, folder, request.param)


# -- the CLI ----------------------------------------------------------------------------


@dataclass
class CliCase:
    id: str
    args: Callable[[Prepared], list[str]]
    error: type[HealthSimError]
    says: str  # part of the message: the case is the error it means to be
    quiet: bool = True  # nothing on stdout


def _db(p: Prepared) -> list[str]:
    return ["--database-url", p.url]


CLI_CASES = [
    CliCase(
        "show-missing",
        lambda p: ["scenario", "show", "nowhere", *_db(p)],
        ScenarioNotFoundError,
        "no scenario named or with id 'nowhere'",
    ),
    CliCase(
        "export-missing",
        lambda p: ["scenario", "export", "nowhere", *_db(p)],
        ScenarioNotFoundError,
        "no scenario named",
    ),
    CliCase(
        "delete-missing",
        lambda p: ["scenario", "delete", "nowhere", "--yes", *_db(p)],
        ScenarioNotFoundError,
        "no scenario named",
    ),
    CliCase(
        "tag-missing",
        lambda p: ["scenario", "tag", "nowhere", "--add", "x", *_db(p)],
        ScenarioNotFoundError,
        "no scenario named",
    ),
    CliCase(
        "blank-tag",
        lambda p: ["scenario", "tag", "present", "--add", " ", *_db(p)],
        ValidationError,
        "tags: a tag must be a non-empty string",
    ),
    CliCase(
        "import-existing",
        lambda p: ["scenario", "import", p.doc("present.json"), *_db(p)],
        ScenarioExistsError,
        "a scenario named 'present' exists",
    ),
    CliCase(
        "import-invalid",
        lambda p: ["scenario", "import", p.doc("invalid.json"), *_db(p)],
        ValidationError,
        "3 problems in the input, nothing was saved: patient[0] (id PAT-1) gender",
    ),
    CliCase(
        "import-truncated",
        lambda p: ["scenario", "import", p.doc("truncated.json"), "--as", "t", *_db(p)],
        DocumentError,
        "truncated",
    ),
    CliCase(
        "import-not-json",
        lambda p: ["scenario", "import", p.doc("not-json.json"), *_db(p)],
        DocumentError,
        "not-json.json",
    ),
    CliCase("import-empty", lambda p: ["scenario", "import", p.doc("empty.json"), *_db(p)], DocumentError, "is empty"),
    CliCase(
        "import-future-version",
        lambda p: ["scenario", "import", p.doc("future.json"), *_db(p)],
        DocumentError,
        "newer than this HealthSim Store reads",
    ),
    CliCase(
        "import-unknown-type",
        lambda p: ["scenario", "import", p.doc("unknown-type.json"), *_db(p)],
        DocumentError,
        "'patientz' is not an entity type",
    ),
    CliCase(
        "import-bad-header",
        lambda p: ["scenario", "import", p.doc("bad-header.json"), *_db(p)],
        DocumentError,
        "'description'",
    ),
    CliCase(
        "import-legacy-file",
        lambda p: ["scenario", "import", p.doc("legacy-v1.json"), *_db(p)],
        DocumentError,
        "migrate-legacy",
    ),
    CliCase(
        "import-no-file",
        lambda p: ["scenario", "import", p.doc("nothing-here.json"), *_db(p)],
        DocumentError,
        "cannot read",
    ),
    CliCase(
        "export-over-a-file",
        lambda p: ["scenario", "export", "present", p.doc("exists.json"), *_db(p)],
        InvalidArgumentError,
        "exists; pass --overwrite",
    ),
    CliCase(
        "export-to-a-folder",
        lambda p: ["scenario", "export", "present", p.doc("a-folder"), "--overwrite", *_db(p)],
        DocumentError,
        "it is a folder",
    ),
    CliCase("query-syntax", lambda p: ["query", "SELEC 1", *_db(p)], QueryError, "SELEC"),
    CliCase("query-write", lambda p: ["query", "DELETE FROM patients", *_db(p)], QueryError, "read"),
    CliCase(
        "query-two-statements", lambda p: ["query", "SELECT 1; SELECT 2", *_db(p)], QueryError, "one SQL statement"
    ),
    CliCase("query-nothing", lambda p: ["query", " ", *_db(p)], QueryError, "no SQL given"),
    CliCase(
        "query-unknown-table", lambda p: ["query", "SELECT * FROM no_such_table", *_db(p)], QueryError, "no_such_table"
    ),
    CliCase(
        "migrate-broken-legacy",
        lambda p: ["migrate-legacy", "--from", p.doc("legacy-broken"), *_db(p)],
        DocumentError,
        "1 of 1 legacy files failed",
        quiet=False,
    ),
    CliCase(
        "reference-bad-file",
        lambda p: ["reference", "load", "svi_county", p.doc("SVI_2022_US_county.csv"), *_db(p)],
        ReferenceDataError,
        "SVI_2022_US_county.csv",
    ),
    CliCase(
        "demo-over-an-imported-scenario",
        lambda p: ["demo", "--patients", "1", "--name", "present", *_db(p)],
        ScenarioExistsError,
        "present",
    ),
    CliCase(
        "future-schema-revision",
        lambda p: ["scenario", "list", "--database-url", p.future_url],
        SchemaVersionError,
        FUTURE_REVISION,
    ),
    CliCase(
        "future-schema-revision-query",
        lambda p: ["query", "SELECT 1", "--database-url", p.future_url],
        SchemaVersionError,
        FUTURE_REVISION,
    ),
]


#: Values no database can store, refused with the field named (issue 15, item 5); each on an empty
#: store of its own, since a value wrongly accepted would change the store the other cases share.
CLI_VALUE_CASES = [
    CliCase(
        "import-lone-surrogate",
        lambda p: ["scenario", "import", p.doc("surrogate.json"), *_db(p)],
        ValidationError,
        "family_name",
    ),
    CliCase(
        "import-nul-in-name",
        lambda p: ["scenario", "import", p.doc("exported.json"), "--as", "bad\x00name", *_db(p)],
        ValidationError,
        "name",
    ),
]


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def assert_one_error_line(code: Any, err: str, says: str) -> None:
    assert code == 1, (code, err)
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), lines[0]  # "error (SomeError): ..." is what a non-project error gives
    assert says in lines[0], lines[0]
    assert_no_leak(lines[0])


@pytest.mark.parametrize("case", CLI_CASES, ids=[case.id for case in CLI_CASES])
def test_a_cli_project_error_is_one_line(case: CliCase, prepared: Prepared, capsys: pytest.CaptureFixture[str]) -> None:
    args = case.args(prepared)
    with pytest.raises(case.error):
        main(["--debug", *args])
    capsys.readouterr()
    code, out, err = _cli(args, capsys)
    assert_one_error_line(code, err, case.says)
    if case.quiet:
        assert out == "", out


@pytest.mark.parametrize("case", CLI_VALUE_CASES, ids=[case.id for case in CLI_VALUE_CASES])
def test_a_value_no_database_can_store_is_one_line(
    case: CliCase, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = store_url.split(":", 1)[0].split("+", 1)[0]
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "exported.json").write_text(json.dumps(_document("exported-doc", {"patient": [PATIENT]})))
    _write_documents(folder, (folder / "exported.json").read_bytes())
    p = Prepared(backend, store_url, "", folder)
    with pytest.raises(case.error):
        main(["--debug", *case.args(p)])
    capsys.readouterr()
    code, out, err = _cli(case.args(p), capsys)
    assert_one_error_line(code, err, case.says)
    assert out == ""
    code, out, _ = _cli_ok(["scenario", "list", "--json", *_db(p)], capsys)
    assert json.loads(out) == []  # nothing was saved


def _cli_ok(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    main(args)
    out, err = capsys.readouterr()
    return 0, out, err


@pytest.mark.parametrize(
    "url, says",
    [
        ("not a url", "cannot parse database URL 'not a url'"),
        ("nosuchdb://nobody@127.0.0.1/none", "unknown database kind 'nosuchdb'"),
        (
            "postgresql+psycopg://nobody@127.0.0.1:1/none",
            "cannot connect to postgresql+psycopg://nobody@127.0.0.1:1/none",
        ),
    ],
    ids=["unparsable", "unknown-dialect", "unreachable-server"],
)
def test_a_database_that_cannot_be_used_is_one_line(url: str, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigurationError):
        main(["--debug", "scenario", "list", "--database-url", url])
    capsys.readouterr()
    assert_one_error_line(*_cli(["scenario", "list", "--database-url", url], capsys)[::2], says)


def test_a_file_that_is_not_a_duckdb_store_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"not a database, just bytes\n" * 200)
    before = garbage.read_bytes()
    url = f"duckdb:///{garbage}"
    with pytest.raises(ConfigurationError):
        main(["--debug", "scenario", "list", "--database-url", url])
    capsys.readouterr()
    assert_one_error_line(*_cli(["scenario", "list", "--database-url", url], capsys)[::2], str(garbage))
    assert garbage.read_bytes() == before


def test_a_sqlite_file_at_the_store_path_is_one_line_and_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    path = tmp_path / "not-a-store.db"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
        connection.commit()
    before = path.read_bytes()
    url = f"duckdb:///{path}"
    with pytest.raises(NotAStoreError):
        main(["--debug", "scenario", "list", "--database-url", url])
    capsys.readouterr()
    assert_one_error_line(*_cli(["scenario", "list", "--database-url", url], capsys)[::2], str(path))
    assert path.read_bytes() == before


@contextlib.contextmanager
def duckdb_held_by_another_process(path: Path) -> Iterator[int]:
    """Another process holds the DuckDB file read-write until the block ends; yields its pid."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(120)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_store_held_by_another_process_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "held.duckdb"
    create_store_engine(f"duckdb:///{path}").dispose()
    with duckdb_held_by_another_process(path) as pid:
        code, out, err = _cli(["scenario", "list", "--database-url", f"duckdb:///{path}"], capsys)
    assert_one_error_line(code, err, f"is in use by process {pid}")
    assert out == ""


# -- the MCP server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@contextlib.asynccontextmanager
async def mcp_client(url: str, log: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=str(HEALTHSIM), args=["mcp", "--database-url", url], env={"HEALTHSIM_HOME": str(log.parent / "home")}
    )
    with open(log, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


async def tool_error(session: ClientSession, tool: str, arguments: dict[str, Any], says: str) -> str:
    result = await session.call_tool(tool, arguments)
    text = "\n".join(part.text for part in result.content)
    assert result.is_error, (tool, arguments, text)
    assert says in text, text
    assert_no_leak(text)
    return text


@dataclass
class McpCase:
    id: str
    tool: str
    arguments: Callable[[Prepared], dict[str, Any]]
    says: str


MCP_CASES = [
    McpCase("load-missing", "load_scenario", lambda p: {"name": "nowhere"}, "no scenario named or with id 'nowhere'"),
    McpCase("summary-missing", "get_summary", lambda p: {"name": "nowhere"}, "no scenario named"),
    McpCase(
        "add-to-missing",
        "add_entities",
        lambda p: {"name": "nowhere", "entities": {"patient": [PATIENT]}},
        "no scenario named",
    ),
    McpCase("delete-missing", "delete_scenario", lambda p: {"name": "nowhere", "confirm": True}, "no scenario named"),
    McpCase("delete-unconfirmed", "delete_scenario", lambda p: {"name": "present"}, "needs confirm=true"),
    McpCase(
        "save-existing",
        "save_scenario",
        lambda p: {"name": "present", "entities": {}},
        "a scenario named 'present' exists",
    ),
    McpCase(
        "save-invalid",
        "save_scenario",
        lambda p: {"name": "invalid", "entities": INVALID_ENTITIES},
        "3 problems in the input, nothing was saved",
    ),
    McpCase(
        "save-unknown-type",
        "save_scenario",
        lambda p: {"name": "unknown", "entities": {"patientz": []}},
        "unknown entity type 'patientz'",
    ),
    McpCase(
        "add-dangling",
        "add_entities",
        lambda p: {"name": "present", "entities": {"encounter": [{**ENCOUNTER, "patient_mrn": "MRN-404"}]}},
        "'MRN-404' matches no patient.mrn",
    ),
    McpCase(
        "import-existing",
        "import_scenario",
        lambda p: {"path": p.doc("present.json")},
        "a scenario named 'present' exists",
    ),
    McpCase(
        "import-truncated",
        "import_scenario",
        lambda p: {"document": Path(p.doc("truncated.json")).read_text(), "name": "t"},
        "truncated",
    ),
    McpCase("import-not-json", "import_scenario", lambda p: {"document": "this is not JSON"}, "the document"),
    McpCase("import-future", "import_scenario", lambda p: {"path": p.doc("future.json")}, "newer"),
    McpCase(
        "import-unknown-type",
        "import_scenario",
        lambda p: {"path": p.doc("unknown-type.json")},
        "'patientz' is not an entity type",
    ),
    McpCase("import-no-file", "import_scenario", lambda p: {"path": p.doc("nothing-here.json")}, "cannot read"),
    McpCase(
        "import-both",
        "import_scenario",
        lambda p: {"path": p.doc("present.json"), "document": "{}"},
        "needs either path or document",
    ),
    McpCase("export-missing", "export_scenario", lambda p: {"name": "nowhere"}, "no scenario named"),
    McpCase(
        "export-over-a-file",
        "export_scenario",
        lambda p: {"name": "present", "path": p.doc("exists.json")},
        "exists; pass overwrite=true",
    ),
    McpCase(
        "export-to-a-folder",
        "export_scenario",
        lambda p: {"name": "present", "path": p.doc("a-folder"), "overwrite": True},
        "it is a folder",
    ),
    McpCase(
        "export-relative-path",
        "export_scenario",
        lambda p: {"name": "present", "path": "out.json"},
        "must be an absolute path",
    ),
    McpCase("query-syntax", "query", lambda p: {"sql": "SELEC 1"}, "SELEC"),
    McpCase("query-write", "query", lambda p: {"sql": "DELETE FROM patients"}, "read"),
    McpCase("query-two-statements", "query", lambda p: {"sql": "SELECT 1; SELECT 2"}, "one SQL statement"),
    McpCase("query-unknown-table", "query", lambda p: {"sql": "SELECT * FROM no_such_table"}, "no_such_table"),
]


@pytest.mark.anyio
async def test_mcp_project_errors_are_tool_errors(prepared: Prepared) -> None:
    """Every case through one server per backend; the store is unchanged afterwards."""
    log = prepared.folder / f"mcp-{prepared.backend}.log"
    failures = []
    async with mcp_client(prepared.url, log) as session:
        for case in MCP_CASES:
            try:
                await tool_error(session, case.tool, case.arguments(prepared), case.says)
            except AssertionError as exc:
                failures.append(f"{case.id}: {exc}")
        summary = await session.call_tool("get_summary", {})
        assert not summary.is_error
        listed = await session.call_tool("list_scenarios", {})
    assert [s["name"] for s in listed.structured_content["scenarios"]] == ["present"]
    assert summary.structured_content["entity_counts"] == {"patient": 1, "encounter": 1}
    assert "Traceback" not in log.read_text(), log.read_text()
    assert not failures, "\n".join(failures)


@pytest.mark.anyio
async def test_mcp_store_at_a_newer_revision_is_a_tool_error(prepared: Prepared) -> None:
    log = prepared.folder / f"mcp-future-{prepared.backend}.log"
    async with mcp_client(prepared.future_url, log) as session:
        await tool_error(session, "list_scenarios", {}, FUTURE_REVISION)
        await tool_error(session, "query", {"sql": "SELECT 1"}, FUTURE_REVISION)
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.mark.anyio
async def test_mcp_unreachable_server_is_a_tool_error(tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    async with mcp_client(url, tmp_path / "mcp.log") as session:
        await tool_error(
            session, "list_scenarios", {}, "cannot connect to postgresql+psycopg://nobody@127.0.0.1:1/none"
        )
    assert "Traceback" not in (tmp_path / "mcp.log").read_text()


@pytest.mark.anyio
async def test_mcp_store_held_by_another_process_is_a_tool_error(tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    create_store_engine(f"duckdb:///{path}").dispose()
    async with mcp_client(f"duckdb:///{path}", tmp_path / "mcp.log") as session:
        with duckdb_held_by_another_process(path) as pid:
            await tool_error(session, "list_scenarios", {}, f"is in use by process {pid}")
        # Once the other process lets go, the server works again.
        result = await session.call_tool("list_scenarios", {})
        assert not result.is_error, result.content[0].text
    assert "Traceback" not in (tmp_path / "mcp.log").read_text()


#: Values no database can store (issue 15, item 5), each through a server on an empty store of its own.
#: (A lone surrogate as a tool argument cannot be sent: the SDK's client refuses to encode it.)
MCP_VALUE_CASES = [
    McpCase(
        "import-lone-surrogate",
        "import_scenario",
        lambda p: {
            "document": json.dumps(
                _document(
                    "surrogate-doc",
                    {"patient": [{**PATIENT, "name": {"given_name": "Ada", "family_name": "Bad\udcffName"}}]},
                )
            )
        },
        "family_name",
    ),
    McpCase("save-nul-in-name", "save_scenario", lambda p: {"name": "bad\x00name", "entities": {}}, "name"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("case", MCP_VALUE_CASES, ids=[case.id for case in MCP_VALUE_CASES])
async def test_mcp_values_no_database_can_store_are_tool_errors(case: McpCase, store_url: str, tmp_path: Path) -> None:
    async with mcp_client(store_url, tmp_path / "mcp.log") as session:
        await tool_error(session, case.tool, case.arguments(None), case.says)  # type: ignore[arg-type]
        listed = await session.call_tool("list_scenarios", {})
    assert listed.structured_content["scenarios"] == []  # nothing was saved
    assert "Traceback" not in (tmp_path / "mcp.log").read_text()
