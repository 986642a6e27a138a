"""``healthsim mcp``: every tool end to end, through the SDK's own stdio client.

One server process serves the whole module (starting one costs seconds); the
tests share its DuckDB file and use scenario names of their own.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import duckdb
import jsonschema
import psycopg
import pytest
import sqlalchemy as sa
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.shared.memory import create_client_server_memory_streams

from healthsim_models.engine import DEFAULT_LOCK_TIMEOUT
from healthsim_models.errors import QueryError
from healthsim_models.registry import ENTITY_TYPES
from healthsim_state.codec.layout import layout
from healthsim_state.interfaces.cli import main
from healthsim_state.interfaces.mcp import tools
from healthsim_state.interfaces.mcp.catalog import MAX_QUERY_TIMEOUT, TOOLS
from healthsim_state.interfaces.mcp.server import build_server
from healthsim_state.interfaces.mcp.tools import DEFAULT_PAGE, MAX_INLINE_EXPORT, MAX_PAGE, Store
from healthsim_state.store.query import CANCELLED, DEFAULT_TIMEOUT, Cancellation

pytestmark = pytest.mark.anyio

HEALTHSIM = Path(sys.executable).with_name("healthsim")

PATIENT = {
    "id": "PAT-1",
    "mrn": "MRN-1",
    "name": {"given_name": "Ada", "family_name": "Lovelace"},
    "birth_date": "1980-02-03",
    "gender": "F",
    "custom_score": 0.4,
}
ENCOUNTERS = [
    {
        "encounter_id": f"E-{i}",
        "patient_mrn": "MRN-1",
        "class_code": "O",
        "status": "finished",
        "admission_time": f"2024-01-0{i}T10:00:00-05:00",
    }
    for i in range(1, 4)
]
MEMBER = {
    "id": "MEM-1",
    "member_id": "M-1",
    "name": {"given_name": "Ada", "family_name": "Lovelace"},
    "birth_date": "1980-02-03",
    "gender": "F",
    "group_id": "G-1",
    "plan_code": "P-1",
    "coverage_start": "2024-01-01",
}
CLAIM = {
    "claim_id": "C-1",
    "claim_type": "PROFESSIONAL",
    "member_id": "M-1",
    "provider_npi": "1234567890",
    "service_date": "2024-01-02",
    "principal_diagnosis": "E11.9",
    "total_charge": 148.83,
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    root = tmp_path_factory.mktemp("mcp")
    path = root / "store.duckdb"
    return {"path": path, "url": f"duckdb:///{path}", "home": root / "home", "log": root / "server.log"}


@pytest.fixture(scope="module")
async def client(store: dict[str, Any]) -> AsyncIterator[ClientSession]:
    """A ClientSession on ``healthsim mcp`` run as a subprocess over stdio."""
    params = StdioServerParameters(
        command=str(HEALTHSIM),
        args=["mcp", "--database-url", store["url"]],
        env={"HEALTHSIM_HOME": str(store["home"])},
    )
    with open(store["log"], "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session
    # Every error the tests provoke is a library error: none may be logged as a crash.
    assert "Traceback" not in store["log"].read_text()


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    assert json.loads(result.content[0].text) == result.structured_content
    return result.structured_content


async def refused(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    assert result.structured_content is None
    return result.content[0].text


async def test_every_tool_is_listed_and_entities_come_from_the_registry(client: ClientSession) -> None:
    listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(listed) == {spec.name for spec in TOOLS}
    for tool in listed.values():
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        assert tool.input_schema["additionalProperties"] is False
    for name in ("save_scenario", "add_entities"):
        schema = listed[name].input_schema
        properties = schema["properties"]["entities"]["properties"]
        assert set(properties) == {n for et in ENTITY_TYPES for n in (et.name, et.plural)}
        for et in ENTITY_TYPES:
            assert properties[et.plural] == properties[et.name] == {"$ref": f"#/$defs/{et.name}"}
            document = schema["$defs"][et.name]["items"]
            top_fields = {f.path[0] for f in layout(et.name).fields}
            assert top_fields <= set(document["properties"])
            assert "additionalProperties" not in document  # unknown fields pass
    entity_type = listed["load_scenario"].input_schema["properties"]["entity_type"]["enum"]
    assert len(entity_type) == 2 * 29
    for name in ("organization", "practitioners", "payer", "observations", "allergy", "immunizations"):
        assert name in entity_type
    for name in ("care_plans", "device", "supplies", "imaging_study", "coverages"):
        assert name in entity_type
    patient = listed["save_scenario"].input_schema["$defs"]["patient"]["items"]
    assert patient["properties"]["gender"]["enum"] == ["F", "M", "O", "U", None]
    assert patient["properties"]["name"]["properties"]["given_name"] == {"type": ["string", "null"]}
    assert "required: mrn" in patient["description"]
    assert listed["list_scenarios"].annotations.read_only_hint is True
    assert listed["delete_scenario"].annotations.destructive_hint is True


def test_the_document_schemas_carry_every_column_rule() -> None:
    """Each rule declared on a column reaches the tool schemas (as hints; the store checks them)."""
    spec = next(s for s in TOOLS if s.name == "save_scenario")
    schema = spec.input_schema()
    seen = 0
    for et in ENTITY_TYPES:
        properties = schema["$defs"][et.name]["items"]["properties"]
        for f in layout(et.name).fields:
            hint = properties[f.path[0]] if len(f.path) == 1 else properties[f.path[0]]["properties"][f.path[1]]
            expected: dict[str, Any] = {}
            if f.pattern is not None:
                expected["pattern"] = f"^(?:{f.pattern.pattern})$"
            if f.enum:
                expected["enum"] = [*sorted(f.enum), None]
            if f.minimum is not None:
                expected["minimum"] = f.minimum
            if f.maximum is not None:
                expected["maximum"] = f.maximum
            if f.max_length is not None:
                expected["maxLength"] = f.max_length
            if f.kind == "array":
                expected["items"] = {"type": {"str": "string", "int": "integer", "object": "object"}[f.items]}
                if f.item_enum:
                    expected["items"]["enum"] = sorted(f.item_enum)
                if f.max_items is not None:
                    expected["maxItems"] = f.max_items
            assert {k: hint.get(k) for k in expected} == expected, (et.name, f.name)
            if f.not_before is not None:
                assert f"not before {f.not_before}" in hint["description"], (et.name, f.name)
            seen += len(expected) + (f.not_before is not None)
    assert seen > 100
    member = schema["$defs"]["member"]["items"]["properties"]
    assert member["pcp_npi"]["pattern"] == r"^(?:[0-9]{10})$"
    assert member["contact"]["properties"]["email"]["pattern"].startswith("^(?:")
    vitals = schema["$defs"]["vital_sign"]["items"]["properties"]
    assert (vitals["temperature"]["minimum"], vitals["temperature"]["maximum"]) == (90, 110)
    criteria = schema["$defs"]["adverse_event"]["items"]["properties"]["aesae_criteria"]["items"]
    assert "Hospitalization" in criteria["enum"]
    reactions = schema["$defs"]["allergy"]["items"]["properties"]["reactions"]
    assert reactions == {"type": ["array", "null"], "items": {"type": "object"}}
    validator = jsonschema.Draft202012Validator(schema)
    good = {"name": "s", "entities": {"member": [{"pcp_npi": "1234567890"}]}}
    assert validator.is_valid(good)
    assert not validator.is_valid({"name": "s", "entities": {"member": [{"pcp_npi": "12345"}]}})
    assert validator.is_valid({"name": "s", "entities": {"allergies": [{"reactions": [{"severity": "mild"}]}]}})
    assert not validator.is_valid({"name": "s", "entities": {"allergy": [{"reactions": ["rash"]}]}})


async def test_save_then_load_a_summary_and_pages_of_entities(client: ClientSession) -> None:
    saved = await call(
        client,
        "save_scenario",
        name="mcp-roundtrip",
        description="three visits",
        tags=["mcp", "demo"],
        entities={"patients": [PATIENT], "encounter": ENCOUNTERS, "member": [MEMBER], "claims": [CLAIM]},
    )
    assert saved["name"] == "mcp-roundtrip"
    assert saved["counts"] == {"patient": 1, "encounter": 3, "member": 1, "claim": 1}
    assert saved["warnings"] == []
    uuid.UUID(saved["id"])

    summary = await call(client, "load_scenario", name="mcp-roundtrip")
    assert set(summary) == {"scenario"}  # entities only on request
    assert await call(client, "load_scenario", name="mcp-roundtrip", entity_type=None, limit=None) == summary
    scenario = summary["scenario"]
    assert scenario["id"] == saved["id"]
    assert scenario["tags"] == ["demo", "mcp"]
    assert scenario["description"] == "three visits"
    assert scenario["total_entities"] == 6
    assert scenario["created_at"].endswith("+00:00")  # instants in UTC

    first = await call(client, "load_scenario", name="mcp-roundtrip", entity_type="encounters", limit=2)
    assert (first["entity_type"], first["offset"], first["total"], first["next_offset"]) == ("encounter", 0, 3, 2)
    rest = await call(client, "load_scenario", name=saved["id"], entity_type="encounter", offset=2, limit=2)
    assert (rest["offset"], rest["next_offset"]) == (2, None)
    assert first["entities"] + rest["entities"] == ENCOUNTERS

    patients = await call(client, "load_scenario", name="mcp-roundtrip", entity_type="patient")
    assert patients["entities"] == [PATIENT]  # the unknown field came back
    claims = await call(client, "load_scenario", name="mcp-roundtrip", entity_type="claim")
    assert claims["entities"] == [CLAIM]  # decimals as JSON numbers, as the exported document has them
    members = await call(client, "load_scenario", name="mcp-roundtrip", entity_type="member")
    copied = await call(
        client,
        "save_scenario",
        name="mcp-roundtrip-copy",
        entities={"member": members["entities"], "claim": claims["entities"]},
    )
    assert copied["counts"] == {"member": 1, "claim": 1}  # a page read is a page that saves

    beyond = await call(client, "load_scenario", name="mcp-roundtrip", entity_type="encounter", offset=5)
    assert (beyond["entities"], beyond["next_offset"]) == ([], None)


async def test_add_entities_resolves_against_what_the_scenario_holds(client: ClientSession) -> None:
    await call(client, "save_scenario", name="mcp-batched", entities={"patient": [PATIENT]})
    added = await call(client, "add_entities", name="mcp-batched", entities={"encounters": ENCOUNTERS[:2]})
    assert added["saved"] == {"encounter": 2}
    assert added["counts"] == {"patient": 1, "encounter": 2}
    problem = await refused(
        client,
        "add_entities",
        name="mcp-batched",
        entities={"encounter": [{**ENCOUNTERS[2], "patient_mrn": "MRN-9"}]},
    )
    assert "encounter[2] patient_mrn: 'MRN-9' matches no patient.mrn in this scenario" in problem
    assert "no scenario named" in await refused(client, "add_entities", name="mcp-nowhere", entities={})


async def test_list_scenarios_filters_and_pages(client: ClientSession) -> None:
    for i in range(3):
        await call(
            client,
            "save_scenario",
            name=f"mcp-list-{i}",
            entities={},
            tags=["listing", f"n{i}"],
            description="Paged" if i else "first",
        )
    page = await call(client, "list_scenarios", tag="listing", limit=2)
    assert [s["name"] for s in page["scenarios"]] == ["mcp-list-0", "mcp-list-1"]
    assert page["next_offset"] == 2
    last = await call(client, "list_scenarios", tag="listing", limit=2, offset=page["next_offset"])
    assert [s["name"] for s in last["scenarios"]] == ["mcp-list-2"]
    assert last["next_offset"] is None
    both = await call(client, "list_scenarios", tag=["listing", "n1"])
    assert [s["name"] for s in both["scenarios"]] == ["mcp-list-1"]
    found = await call(client, "list_scenarios", search="PAGED")
    assert [s["name"] for s in found["scenarios"]] == ["mcp-list-1", "mcp-list-2"]


async def test_a_validation_error_names_each_problem_and_saves_nothing(client: ClientSession) -> None:
    message = await refused(
        client,
        "save_scenario",
        name="mcp-invalid",
        entities={"patient": [{**PATIENT, "gender": "X"}], "encounter": [{**ENCOUNTERS[0], "patient_mrn": "MRN-9"}]},
    )
    assert message.startswith("2 problems in the input, nothing was saved: ")
    assert "patient[0] (id PAT-1) gender: 'X' is not one of F, M, O, U" in message
    assert "encounter[0] patient_mrn: 'MRN-9' matches no patient.mrn" in message
    assert "no scenario named or with id 'mcp-invalid'" in await refused(client, "get_summary", name="mcp-invalid")


async def test_unknown_names_and_existing_scenarios_are_tool_errors(client: ClientSession) -> None:
    assert "no scenario named or with id 'mcp-missing'" in await refused(client, "load_scenario", name="mcp-missing")
    message = await refused(client, "save_scenario", name="mcp-types", entities={"patientz": []})
    assert (
        "unknown entity type 'patientz'; valid types: organization, practitioner, payer, patient, encounter" in message
    )

    await call(client, "save_scenario", name="mcp-twice", entities={"patient": [PATIENT]})
    assert "a scenario named 'mcp-twice' exists" in await refused(
        client, "save_scenario", name="mcp-twice", entities={}
    )
    replaced = await call(client, "save_scenario", name="mcp-twice", entities={}, overwrite=True)
    assert replaced["counts"] == {}


async def test_arguments_are_checked_against_the_schema(client: ClientSession) -> None:
    message = await refused(client, "list_scenarios", limit=0, colour="red")
    assert message.startswith("invalid arguments for list_scenarios: ")
    assert "limit: 0 is less than the minimum of 1" in message
    assert "'colour' was unexpected" in message
    message = await refused(client, "save_scenario", name="mcp-args", entities={"patient": [1]})
    assert "entities.patient[0]: 1 is not of type 'object'" in message
    assert "'entities' is a required property" in await refused(client, "add_entities", name="mcp-args")
    assert "entity_type: 'patientz' is not one of" in await refused(
        client, "load_scenario", name="mcp-args", entity_type="patientz"
    )
    assert "is greater than the maximum of 9223372036854775807" in await refused(
        client, "load_scenario", name="mcp-args", entity_type="patient", offset=2**63
    )
    with pytest.raises(MCPError, match="unknown tool 'drop_everything'"):
        await client.call_tool("drop_everything", {})


async def test_delete_needs_confirm(client: ClientSession) -> None:
    await call(client, "save_scenario", name="mcp-delete", entities={"patient": [PATIENT], "encounter": ENCOUNTERS})
    for arguments in ({}, {"confirm": False}):
        message = await refused(client, "delete_scenario", name="mcp-delete", **arguments)
        assert message.startswith("delete_scenario needs confirm=true") and "nothing was deleted" in message
    assert (await call(client, "get_summary", name="mcp-delete"))["scenario"]["total_entities"] == 4

    deleted = await call(client, "delete_scenario", name="mcp-delete", confirm=True)
    assert deleted["deleted"]["name"] == "mcp-delete"
    assert deleted["deleted"]["entity_counts"] == {"patient": 1, "encounter": 3}
    assert "no scenario named" in await refused(client, "get_summary", name="mcp-delete")
    assert "no scenario named" in await refused(client, "delete_scenario", name="mcp-delete", confirm=True)


async def test_summary_of_a_scenario_and_of_the_store(client: ClientSession) -> None:
    await call(
        client, "save_scenario", name="mcp-summary", entities={"patient": [PATIENT], "encounter": ENCOUNTERS[:1]}
    )
    one = await call(client, "get_summary", name="mcp-summary")
    assert one["scenario"]["entity_counts"] == {"patient": 1, "encounter": 1}
    whole = await call(client, "get_summary")
    assert whole["entity_counts"]["patient"] >= 1
    assert whole["total_entities"] == sum(whole["entity_counts"].values())


async def test_the_cli_writes_while_the_server_runs(client: ClientSession, store: dict[str, Any]) -> None:
    await call(client, "save_scenario", name="mcp-before-cli", entities={"patient": [PATIENT]})
    # Between calls the server holds no lock: opening the file fails at once if it did.
    duckdb.connect(str(store["path"])).close()
    await call(client, "query", sql="SELECT count(*) FROM patients")  # its own read-only connection
    await call(client, "export_scenario", name="mcp-before-cli")
    duckdb.connect(str(store["path"])).close()
    subprocess.run(
        [str(HEALTHSIM), "demo", "--patients", "2", "--name", "from-the-cli", "--database-url", store["url"]],
        check=True,
        timeout=120,
        capture_output=True,
    )
    seen = (await call(client, "get_summary", name="from-the-cli"))["scenario"]
    assert set(seen["entity_counts"]) == {et.name for et in ENTITY_TYPES}  # the demo spans every type
    for et in ENTITY_TYPES:
        page = await call(client, "load_scenario", name="from-the-cli", entity_type=et.plural, limit=1)
        assert len(page["entities"]) == 1 and page["total"] == seen["entity_counts"][et.name]
    # ... and the server still writes after the CLI did.
    await call(client, "add_entities", name="mcp-before-cli", entities={"encounter": ENCOUNTERS[:1]})


async def test_a_call_waits_for_another_process_to_release_the_file(
    client: ClientSession, store: dict[str, Any]
) -> None:
    holder = duckdb.connect(str(store["path"]))  # this process holds the file now

    async def release_soon() -> None:
        await anyio.sleep(1)
        holder.close()

    started = time.monotonic()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(release_soon)
        summary = await call(client, "get_summary")
    assert time.monotonic() - started >= 1
    assert summary["total_entities"] >= 0


async def test_query_is_read_only_sql(client: ClientSession) -> None:
    await call(client, "save_scenario", name="mcp-query", entities={"member": [MEMBER], "claim": [CLAIM]})
    sql = (
        "SELECT c.claim_id, c.total_charge, c.service_date FROM claims c JOIN scenario_entities se "
        "ON se.entity_id = c.id JOIN scenarios s ON s.id = se.scenario_id WHERE s.name = 'mcp-query'"
    )
    result = await call(client, "query", sql=sql)
    assert result == {
        "columns": ["claim_id", "total_charge", "service_date"],
        "rows": [["C-1", "148.83", "2024-01-02"]],
        "truncated": False,
    }
    capped = await call(client, "query", sql="SELECT * FROM range(5)", max_rows=2)
    assert (len(capped["rows"]), capped["truncated"]) == (2, True)
    refused_write = await refused(client, "query", sql="DELETE FROM claims")
    assert "read-only" in refused_write.lower() or "read only" in refused_write.lower(), refused_write
    assert (await call(client, "get_summary", name="mcp-query"))["scenario"]["entity_counts"]["claim"] == 1
    assert "syntax" in (await refused(client, "query", sql="SELEC 1")).lower()


async def test_export_and_import_through_files_and_inline(client: ClientSession, tmp_path: Path) -> None:
    entities = {"patient": [PATIENT], "encounter": ENCOUNTERS, "member": [MEMBER], "claim": [CLAIM]}
    await call(client, "save_scenario", name="mcp-exchange", entities=entities, tags=["x"])
    inline = await call(client, "export_scenario", name="mcp-exchange")
    document = json.loads(inline["document"])
    assert (document["schema_version"], document["name"], document["tags"]) == ("1.0", "mcp-exchange", ["x"])
    assert list(document["entities"]) == [et.name for et in ENTITY_TYPES]
    assert inline["counts"] == {"patient": 1, "encounter": 3, "member": 1, "claim": 1} and inline["path"] is None

    target = tmp_path / "exchange.json"
    written = await call(client, "export_scenario", name="mcp-exchange", path=str(target))
    assert written["path"] == str(target) and written["bytes"] == target.stat().st_size
    assert target.read_text() == inline["document"]  # the same bytes either way
    assert "exists; pass overwrite=true" in await refused(
        client, "export_scenario", name="mcp-exchange", path=str(target)
    )
    await call(client, "export_scenario", name="mcp-exchange", path=str(target), overwrite=True)
    assert "must be an absolute path" in await refused(client, "export_scenario", name="mcp-exchange", path="out.json")

    copy = await call(client, "import_scenario", path=str(target), name="mcp-exchange-copy")
    assert copy["name"] == "mcp-exchange-copy" and copy["counts"] == inline["counts"]
    loaded = await call(client, "load_scenario", name="mcp-exchange-copy", entity_type="patient")
    assert loaded["entities"] == [PATIENT]
    assert "a scenario named 'mcp-exchange' exists" in await refused(
        client, "import_scenario", document=inline["document"]
    )
    again = await call(client, "import_scenario", document=inline["document"], overwrite=True)
    assert again["id"] == document["scenario_id"]

    for arguments in ({}, {"path": str(target), "document": inline["document"]}):
        assert "needs either path or document" in await refused(client, "import_scenario", **arguments)
    truncated = inline["document"][: len(inline["document"]) // 2]
    message = await refused(client, "import_scenario", document=truncated, name="mcp-truncated")
    assert message.startswith("the document is truncated") and "line" in message, message
    assert "no scenario named" in await refused(client, "get_summary", name="mcp-truncated")


async def test_large_scenarios_are_exported_to_files_only(client: ClientSession, tmp_path: Path) -> None:
    patients = [{**PATIENT, "id": f"PAT-{i}", "mrn": f"MRN-{i}"} for i in range(MAX_INLINE_EXPORT + 1)]
    await call(client, "save_scenario", name="mcp-large", entities={"patient": patients})
    message = await refused(client, "export_scenario", name="mcp-large")
    assert f"holds {MAX_INLINE_EXPORT + 1} entities, more than the {MAX_INLINE_EXPORT} returned inline" in message
    written = await call(client, "export_scenario", name="mcp-large", path=str(tmp_path / "large.json"))
    assert written["entities"] == MAX_INLINE_EXPORT + 1


# -- long queries: bounded, cancellable, and never in the way of other calls ---------------

#: Statements that run for minutes on each backend.
LONG = {
    "duckdb": "SELECT sum(a.range * b.range) AS s FROM range(200000) a, range(200000) b",
    "postgresql": "SELECT pg_sleep(600)",
}
#: Far below what the long statements take (and the timeouts the tests give them), far above
#: what a cancelled or timed-out call needs to end.
CUT_SHORT = 60


async def _pg_sleeping(url: str) -> int:
    """How many pg_sleep calls the server runs now in the database of ``url``."""
    parts = sa.make_url(url)

    def count() -> int:
        with psycopg.connect(host=parts.host, port=parts.port, user=parts.username, dbname=parts.database) as conn:
            # The query shows as the cursor's FETCH; what it waits on gives it away.
            sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND datname = current_database()"
            return conn.execute(sql).fetchone()[0]

    return await anyio.to_thread.run_sync(count)


async def _a_long_query_leaves_the_server_responsive(client: ClientSession, backend: str, url: str) -> None:
    """While a long query runs, other calls are answered; the client's cancellation ends the query;
    a timeout ends one with an error; afterwards the server answers as before."""
    await call(client, "save_scenario", name=f"busy-{backend}", entities={"patient": [PATIENT]})
    finished = anyio.Event()
    cancel_query = anyio.CancelScope()

    async def long_query() -> None:
        with cancel_query:  # cancelling it sends notifications/cancelled for the request
            await client.call_tool("query", {"sql": LONG[backend], "timeout": MAX_QUERY_TIMEOUT})
            finished.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(long_query)
        if backend == "postgresql":
            with anyio.fail_after(CUT_SHORT):
                while not await _pg_sleeping(url):
                    await anyio.sleep(0.1)
        else:
            await anyio.sleep(1.5)  # under way; its connection is open
        listed = await client.list_tools()
        assert "query" in {tool.name for tool in listed.tools}
        assert (await call(client, "get_summary", name=f"busy-{backend}"))["scenario"]["total_entities"] == 1
        assert (await call(client, "list_scenarios", search=f"busy-{backend}"))["scenarios"]
        page = await call(client, "load_scenario", name=f"busy-{backend}", entity_type="patient")
        assert page["entities"] == [PATIENT]
        assert (await call(client, "query", sql="SELECT 1 AS one"))["rows"] == [[1]]  # a read beside a read
        if backend == "postgresql":  # a write beside a read, where the database allows it
            await call(client, "add_entities", name=f"busy-{backend}", entities={"encounter": ENCOUNTERS[:1]})
        assert not finished.is_set()
        cancel_query.cancel()
    assert not finished.is_set()

    started = time.monotonic()
    # On DuckDB a write waits for every read in progress: it runs only once the query has ended.
    await call(client, "save_scenario", name=f"after-{backend}", entities={})
    assert time.monotonic() - started < CUT_SHORT
    if backend == "postgresql":
        with anyio.fail_after(CUT_SHORT):
            while await _pg_sleeping(url):
                await anyio.sleep(0.1)

    message = await refused(client, "query", sql=LONG[backend], timeout=1)
    assert message.startswith("the query ran longer than 1 s and was cancelled; nothing was changed"), message
    assert (await call(client, "query", sql="SELECT 2 AS two"))["rows"] == [[2]]
    assert (await call(client, "get_summary", name=f"after-{backend}"))["scenario"]["total_entities"] == 0


async def test_a_long_query_through_the_stdio_server(client: ClientSession, store: dict[str, Any]) -> None:
    await _a_long_query_leaves_the_server_responsive(client, "duckdb", store["url"])


@asynccontextmanager
async def _in_process(store: Store) -> AsyncIterator[ClientSession]:
    """A ClientSession on the server run in this process over memory streams."""
    server = build_server(store)
    async with (
        create_client_server_memory_streams() as ((client_read, client_write), (server_read, server_write)),
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(server.run, server_read, server_write, server.create_initialization_options())
        async with ClientSession(client_read, client_write) as session:
            await session.initialize()
            yield session
        tasks.cancel_scope.cancel()


async def test_a_long_query_on_both_backends(store_url: str) -> None:
    store = Store(store_url)
    try:
        async with _in_process(store) as client:
            await _a_long_query_leaves_the_server_responsive(client, store_url.split(":")[0].split("+")[0], store_url)
    finally:
        store.close()


def test_the_query_tool_takes_the_servers_cancellation(duckdb_url: str) -> None:
    store = Store(duckdb_url)
    try:
        cancellation = Cancellation()
        cancellation.cancel()
        with pytest.raises(QueryError, match=CANCELLED):
            tools.query(store, "SELECT 1", cancellation=cancellation)
        assert tools.query(store, "SELECT 1 AS one", timeout=DEFAULT_TIMEOUT)["rows"] == [[1]]
    finally:
        store.close()


async def test_an_unexpected_error_reaches_the_client_without_sql_or_traceback(
    duckdb_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Store):
        def reader(self) -> Any:  # the reads of tools; the server's own reads (the audit setting) still work
            raise sa.exc.ProgrammingError(
                "SELECT secret FROM _hs_old_members", {}, Exception('relation "_hs_old_members" does not exist')
            )

    store = Broken(duckdb_url)
    try:
        async with _in_process(store) as client:
            with caplog.at_level(logging.ERROR, logger="healthsim_state.interfaces.mcp.server"):
                message = await refused(client, "get_summary")
            assert message.startswith("get_summary failed with an unexpected error; the server logged the details")
            for leak in ("SELECT", "_hs_old_members", "ProgrammingError", "Traceback", "\n"):
                assert leak not in message
            assert "ProgrammingError" in caplog.text and "SELECT secret" in caplog.text  # the log has it all
            assert (await call(client, "query", sql="SELECT 1 AS one"))["rows"] == [[1]]
    finally:
        store.close()


def test_the_query_timeout_argument_is_bounded_by_the_schema() -> None:
    (spec,) = [spec for spec in TOOLS if spec.name == "query"]
    timeout = spec.input_schema()["properties"]["timeout"]
    assert (timeout["exclusiveMinimum"], timeout["maximum"]) == (0, MAX_QUERY_TIMEOUT)
    validator = jsonschema.Draft202012Validator(spec.input_schema())
    assert validator.is_valid({"sql": "SELECT 1", "timeout": 0.5})
    for bad in (0, -1, MAX_QUERY_TIMEOUT + 1, "10"):
        assert not validator.is_valid({"sql": "SELECT 1", "timeout": bad})


# -- in-process ---------------------------------------------------------------------


def test_the_tools_work_on_both_backends(store_url: str, tmp_path: Path) -> None:
    """The tool functions in-process (the protocol side is the same on every backend)."""
    store = Store(store_url)
    try:
        entities = {"patient": [PATIENT], "encounter": ENCOUNTERS, "member": [MEMBER], "claim": [CLAIM]}
        saved = tools.save_scenario(store, "both", entities, tags=["t"])
        page = tools.load_scenario(store, "both", entity_type="encounter", offset=1, limit=1)
        assert (page["entities"], page["next_offset"]) == ([ENCOUNTERS[1]], 2)
        assert tools.list_scenarios(store, tag="t")["scenarios"][0]["id"] == saved["id"]
        rows = tools.query(store, "SELECT total_charge FROM claims")["rows"]
        assert rows == [["148.83"]]
        document = tools.export_scenario(store, "both")["document"]
        copy = tools.import_scenario(store, document=document, name="both-copy")
        assert copy["counts"] == saved["counts"]
        assert tools.export_scenario(store, "both", path=str(tmp_path / "both.json"))["entities"] == 6
        assert tools.delete_scenario(store, "both", confirm=True)["deleted"]["id"] == saved["id"]
        assert tools.get_summary(store)["entity_counts"] == saved["counts"]  # the copy's own rows
    finally:
        store.close()


def test_a_bad_database_url_fails_before_serving(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["mcp", "--database-url", "not a url"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot parse database URL 'not a url'") and len(err.splitlines()) == 1


# -- docs/mcp.md ----------------------------------------------------------------------

DOC = (Path(__file__).resolve().parent.parent / "docs" / "mcp.md").read_text()
PROSE = " ".join(DOC.split())  # line breaks as spaces


def test_the_docs_tool_table_matches_the_tools() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \|", DOC, re.M)
    assert [name for name, _ in rows] == [spec.name for spec in TOOLS]
    for (name, arguments), spec in zip(rows, TOOLS, strict=True):
        assert re.findall(r"`(\w+)`", arguments) == list(spec.properties), name


def test_the_docs_limits_are_the_codes() -> None:
    assert f"(default {DEFAULT_PAGE}, at most {MAX_PAGE})" in PROSE
    assert f"at most {MAX_INLINE_EXPORT:,} entities" in PROSE
    assert f"waits up to {DEFAULT_LOCK_TIMEOUT:g} seconds" in PROSE
    default = f"default: the server's `HEALTHSIM_QUERY_TIMEOUT`, else {DEFAULT_TIMEOUT:g}"
    assert f"(more than 0, at most {MAX_QUERY_TIMEOUT}; {default})" in PROSE


def test_the_docs_client_configuration_starts_healthsim_mcp() -> None:
    config = json.loads(re.search(r"```json\n(.*?)```", DOC, re.S).group(1))
    server = config["mcpServers"]["healthsim"]
    assert Path(server["command"]).name == "healthsim" and server["args"] == ["mcp"]
    assert set(server["env"]) == {"HEALTHSIM_HOME"}
    assert re.search(r"claude mcp add .*healthsim -- \\\n\s+\S+/healthsim mcp", DOC)


def test_the_docs_python_client_runs(isolated_home: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """As written: it starts the healthsim beside the running Python, on $HEALTHSIM_HOME (the test's)."""
    code = re.search(r"```python\n(.*?)```", DOC, re.S).group(1)
    exec(compile(code, "docs/mcp.md example", "exec"), {"__name__": "docs_example"})
    assert capfd.readouterr().out.strip() == "{'scenarios': [], 'offset': 0, 'next_offset': None}"
