"""The OMOP export through its interfaces, on both backends: `healthsim analytics omop|summary`
and the MCP tools analytics_omop and analytics_summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healthsim_models import create_store_engine, session_scope
from healthsim_models.errors import InvalidArgumentError, ScenarioNotFoundError, VocabularyError
from healthsim_state import ScenarioRepository, demo
from healthsim_state.interfaces.cli import app
from healthsim_state.interfaces.mcp import tools
from healthsim_state.interfaces.mcp.catalog import TOOLS

runner = CliRunner()
VOCABULARY = Path(__file__).parent / "fixtures" / "omop-vocabulary-sample"


def _demo(url: str, patients: int = 5) -> None:
    engine = create_store_engine(url)
    with session_scope(engine) as session:
        demo.save_demo(ScenarioRepository(session), patients=patients)
    engine.dispose()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result.stdout


def test_the_cli_builds_and_summarises(store_url: str) -> None:
    _demo(store_url)
    report = json.loads(_ok("analytics", "omop", "demo", "--json", "--database-url", store_url))
    assert report["schema"] == "omop" and report["scenarios"] == ["demo"] and report["vocabulary"] is None
    assert (
        report["rows"]["person"] == 5
        and report["unmapped"]["condition_occurrence"] == report["rows"]["condition_occurrence"]
    )
    text = _ok("analytics", "omop", "--schema", "omop_v", "--vocabulary", str(VOCABULARY), "--database-url", store_url)
    assert "into schema 'omop_v' of demo (vocabulary" in text and "condition_occurrence" in text
    summary = json.loads(
        _ok("analytics", "summary", "--schema", "omop_v", "--top", "2", "--json", "--database-url", store_url)
    )
    (scenario,) = summary["scenarios"]
    assert scenario["scenario"] == "demo" and scenario["persons"] == 5
    assert len(scenario["top_conditions"]) == 2 and sum(v["visits"] for v in scenario["visits"]) > 0
    printed = _ok("analytics", "summary", "--schema", "omop_v", "--database-url", store_url)
    assert "demo: 5 persons" in printed and "Outpatient Visit" in printed


def test_the_mcp_tools_build_and_read(store_url: str) -> None:
    _demo(store_url, patients=3)
    store = tools.Store(store_url)
    try:
        built = tools.analytics_omop(store, ["demo"], vocabulary=str(VOCABULARY.resolve()))
        assert built["rows"]["person"] == 3 and built["vocabulary"] == str(VOCABULARY.resolve())
        assert tools.analytics_omop(store)["scenarios"] == ["demo"]  # all scenarios
        report = tools.analytics_summary(store, top=1)
        assert report["scenarios"][0]["persons"] == 3 and len(report["scenarios"][0]["top_drugs"]) == 1
        with pytest.raises(InvalidArgumentError, match="absolute path"):
            tools.analytics_omop(store, vocabulary="relative/folder")
        with pytest.raises(VocabularyError):
            tools.analytics_omop(store, vocabulary=str(VOCABULARY.resolve() / "CONCEPT.csv"))
        with pytest.raises(ScenarioNotFoundError):
            tools.analytics_omop(store, ["no-such-scenario"])
        with pytest.raises(InvalidArgumentError, match="holds no OMOP export"):
            tools.analytics_summary(store, schema="nothing_here")
    finally:
        store.close()
    specs = {spec.name: spec for spec in TOOLS}
    assert specs["analytics_summary"].read_only and not specs["analytics_omop"].read_only
