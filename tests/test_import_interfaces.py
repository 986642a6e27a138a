"""``healthsim import synthea`` and the MCP ``import_synthea`` tool, on DuckDB and PostgreSQL.

What the import stores is tested in tests/test_synthea*.py; here: the
arguments, the summary each interface prints, and errors as one line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from healthsim_state.interfaces.cli import app, main
from healthsim_state.interfaces.mcp import tools
from healthsim_state.interfaces.mcp.catalog import TOOLS
from healthsim_state.interfaces.mcp.tools import Store

FIXTURE = Path(__file__).parent / "fixtures" / "synthea-27"
runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one error line ``healthsim args`` ends with (status 1)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def _csv_rows(name: str) -> int:
    with open(FIXTURE / name, encoding="utf-8") as f:
        return sum(1 for _ in f) - 1


def test_the_cli_imports_a_folder_and_prints_its_summary(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(
        "import", "synthea", str(FIXTURE), "--scenario", "s27", "-t", "synthea", "--json", "--database-url", store_url
    )
    assert code == 0, out
    report = json.loads(out)
    assert report["scenario"] == "s27"
    assert report["entities"]["patient"] == _csv_rows("patients.csv")
    assert report["rows_read"]["patients.csv"] == _csv_rows("patients.csv")
    assert report["rows_read"]["encounters.csv"] == report["entities"]["encounter"] == _csv_rows("encounters.csv")
    assert report["layout"] == "v3.0"

    code, out = _run("scenario", "list", "--tag", "synthea", "--database-url", store_url)
    assert code == 0 and "s27" in out

    err = _fails(capsys, "import", "synthea", str(FIXTURE), "--scenario", "s27", "--database-url", store_url)
    assert err.startswith("error: a scenario named 's27' exists"), err

    code, out = _run("import", "synthea", str(FIXTURE), "--scenario", "s27", "--overwrite", "--database-url", store_url)
    assert code == 0, out
    assert "imported Synthea folder (v3.0 layout) into 's27'" in out and "patients.csv" in out
    assert "entity type" in out and "claim_line" in out


def test_the_cli_refuses_a_bad_folder_in_one_line_and_writes_nothing(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _fails(capsys, "import", "synthea", str(tmp_path), "--scenario", "empty", "--database-url", store_url)
    assert "patients.csv" in err, err
    err = _fails(capsys, "import", "synthea", str(tmp_path / "nowhere"), "--scenario", "x", "--database-url", store_url)
    assert "nowhere" in err, err

    broken = tmp_path / "broken"
    shutil.copytree(FIXTURE, broken)
    lines = (broken / "encounters.csv").read_text(encoding="utf-8").splitlines()
    fields = lines[3].split(",")
    fields[1] = "2023-13-45T00:00:00Z"  # START
    lines[3] = ",".join(fields)
    (broken / "encounters.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    err = _fails(capsys, "import", "synthea", str(broken), "--scenario", "broken", "--database-url", store_url)
    assert "encounters.csv" in err and "line 4" in err and "START" in err, err
    code, out = _run("scenario", "list", "--database-url", store_url)
    assert code == 0 and "broken" not in out


def test_the_mcp_tool_is_listed_with_its_arguments() -> None:
    (spec,) = [spec for spec in TOOLS if spec.name == "import_synthea"]
    schema = spec.input_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["required"]) == {"path", "scenario"}
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"path": "/data/synthea", "scenario": "s", "tags": ["a"], "overwrite": True})
    assert not validator.is_valid({"path": "/data/synthea"})
    assert not validator.is_valid({"path": "/data/synthea", "scenario": "s", "other": 1})


def test_the_mcp_tool_imports_on_both_backends(store_url: str) -> None:
    store = Store(store_url)
    try:
        report = tools.import_synthea(store, str(FIXTURE.resolve()), "mcp-s27", tags=["t"])
        assert report["scenario"] == "mcp-s27"
        assert report["entities"]["patient"] == _csv_rows("patients.csv")
        assert tools.list_scenarios(store, tag="t")["scenarios"][0]["name"] == "mcp-s27"
        with pytest.raises(Exception, match="must be an absolute path"):
            tools.import_synthea(store, "tests/fixtures/synthea-27", "relative")
        again = tools.import_synthea(store, str(FIXTURE.resolve()), "mcp-s27", overwrite=True)
        assert again["scenario_id"] == report["scenario_id"] and again["entities"] == report["entities"]
    finally:
        store.close()
