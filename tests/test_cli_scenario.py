"""``healthsim scenario ...`` and ``healthsim migrate-legacy``: every command on DuckDB."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healthsim_state.interfaces.cli import app, main
from tests.helpers import FIXTURES

runner = CliRunner(env={"COLUMNS": "250"})  # tables unfolded, as on a wide terminal
NAME = "riverbend-cross-product-demo"


def ok(*args: str, input: str | bytes | None = None) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stderr == "", result.stderr  # on success stderr carries nothing (no terminal: no progress)
    return result.stdout


@pytest.fixture
def url(duckdb_url: str) -> str:
    return duckdb_url


@pytest.fixture
def imported(url: str) -> str:
    ok("scenario", "import", str(FIXTURES / "scenario-canonical.json"), "--database-url", url)
    return url


def error_line(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_list_empty_and_with_scenarios(url: str) -> None:
    assert "no scenarios yet" in ok("scenario", "list", "--database-url", url)
    assert json.loads(ok("scenario", "list", "--json", "--database-url", url)) == []
    ok("scenario", "import", str(FIXTURES / "scenario-canonical.json"), "--database-url", url)
    ok("scenario", "import", str(FIXTURES / "scenario-canonical.json"), "--as", "second copy", "--database-url", url)
    out = ok("scenario", "list", "--database-url", url)
    assert NAME in out and "second copy" in out and "77" in out
    listed = json.loads(ok("scenario", "list", "--json", "--database-url", url))
    assert [s["name"] for s in listed] == ["riverbend-cross-product-demo", "second copy"]
    assert listed[0]["total_entities"] == 77 and listed[0]["entity_counts"]["patient"] == 3
    assert listed[0]["created_at"] == "2025-01-14T16:05:00+00:00"
    only = json.loads(ok("scenario", "list", "--json", "--search", "SECOND", "--database-url", url))
    assert [s["name"] for s in only] == ["second copy"]
    ok("scenario", "tag", "second copy", "--add", "mine", "--database-url", url)
    tagged = json.loads(ok("scenario", "list", "--json", "--tag", "mine", "--tag", "demo", "--database-url", url))
    assert [s["name"] for s in tagged] == ["second copy"]
    paged = json.loads(ok("scenario", "list", "--json", "--limit", "1", "--offset", "1", "--database-url", url))
    assert [s["name"] for s in paged] == ["second copy"]
    first_page = ok("scenario", "list", "--limit", "1", "--database-url", url)
    assert NAME in first_page and "second copy" not in first_page
    assert "more scenarios follow: --offset 1" in first_page
    assert "more scenarios" not in ok("scenario", "list", "--limit", "2", "--database-url", url)
    assert "no scenarios match" in ok("scenario", "list", "--tag", "absent", "--database-url", url)
    # Numbers beyond what a database's LIMIT and OFFSET take mean "all" and "none".
    assert len(json.loads(ok("scenario", "list", "--json", "--limit", str(10**30), "--database-url", url))) == 2
    assert json.loads(ok("scenario", "list", "--json", "--offset", str(10**30), "--database-url", url)) == []
    for option, value in [("--limit", 0), ("--offset", -1)]:
        result = runner.invoke(app, ["scenario", "list", option, str(value), "--database-url", url])
        assert result.exit_code == 2 and f"Invalid value for '{option}'" in result.stderr, result.stderr


def test_show(imported: str) -> None:
    out = ok("scenario", "show", NAME, "--database-url", imported)
    assert "2e7ec343-1a17-4f4c-8e4b-d4d32e545898" in out
    assert "cross-product, demo, diabetes" in out
    assert "claim_line" in out and "total" in out and "77" in out
    shown = json.loads(
        ok("scenario", "show", "2e7ec343-1a17-4f4c-8e4b-d4d32e545898", "--json", "--database-url", imported)
    )
    assert shown["name"] == NAME and shown["entity_counts"]["exposure"] == 2


def test_show_json_is_what_the_mcp_tools_return(imported: str) -> None:
    from healthsim_state.interfaces.mcp import tools

    shown = json.loads(ok("scenario", "show", NAME, "--json", "--database-url", imported))
    store = tools.Store(imported)
    try:
        assert tools.load_scenario(store, NAME)["scenario"] == shown
        assert tools.list_scenarios(store)["scenarios"] == json.loads(
            ok("scenario", "list", "--json", "--database-url", imported)
        )
    finally:
        store.close()
    assert shown["total_entities"] == sum(shown["entity_counts"].values()) == 77


def test_export_to_a_file_and_to_stdout_and_import_back(imported: str, tmp_path: Path) -> None:
    target = tmp_path / "riverbend.json"
    out = ok("scenario", "export", NAME, str(target), "--database-url", imported)
    assert f"exported '{NAME}': 77 entities" in out and str(target) in out
    piped = runner.invoke(app, ["scenario", "export", NAME, "--database-url", imported])
    assert piped.exit_code == 0 and piped.stderr == ""
    assert piped.stdout_bytes == target.read_bytes()
    assert ok("scenario", "export", NAME, "-", "--database-url", imported).encode() == target.read_bytes()

    ok("scenario", "delete", NAME, "--yes", "--database-url", imported)
    out = ok("scenario", "import", "-", "--database-url", imported, input=target.read_bytes())
    assert f"imported '{NAME}' (2e7ec343-1a17-4f4c-8e4b-d4d32e545898): 77 entities" in out
    again = tmp_path / "again.json"
    ok("scenario", "export", NAME, str(again), "--database-url", imported)
    assert again.read_bytes() == target.read_bytes()


def test_export_onto_an_existing_file_needs_overwrite(
    imported: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "riverbend.json"
    target.write_text("keep me")
    err = error_line(capsys, "scenario", "export", NAME, str(target), "--database-url", imported)
    assert err == f"error: {target} exists; pass --overwrite to replace it"
    assert target.read_text() == "keep me"
    ok("scenario", "export", NAME, str(target), "--overwrite", "--database-url", imported)
    assert json.loads(target.read_bytes())["name"] == NAME


@pytest.mark.parametrize("mode", ["--dry-run", "--status"])
def test_migrate_legacy_refuses_backup_where_nothing_is_migrated(
    mode: str, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["migrate-legacy", mode, "--backup", str(tmp_path / "backup"), "--database-url", url])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"error: Invalid value for '--backup': cannot be combined with {mode}, which migrates no file "
        "(see 'healthsim migrate-legacy --help')"
    )
    assert not (tmp_path / "backup").exists()


def test_import_onto_an_existing_name(imported: str, capsys: pytest.CaptureFixture[str]) -> None:
    source = str(FIXTURES / "scenario-canonical.json")
    err = error_line(capsys, "scenario", "import", source, "--database-url", imported)
    assert err == (
        f"error: a scenario named '{NAME}' exists; import with overwrite (--overwrite) to replace it, "
        "or under another name (--as NEW_NAME)"
    )
    assert "imported" in ok("scenario", "import", source, "--overwrite", "--database-url", imported)
    assert "imported 'copy'" in ok("scenario", "import", source, "--as", "copy", "--database-url", imported)


def test_import_errors_are_one_line(url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = error_line(capsys, "scenario", "import", str(FIXTURES / "invalid" / "truncated.json"), "--database-url", url)
    assert err.startswith("error: ") and "is truncated: it ends inside patient[0]" in err and "--debug" not in err
    err = error_line(capsys, "scenario", "import", str(FIXTURES / "invalid" / "bad-gender.json"), "--database-url", url)
    assert "1 problem in the input, nothing was saved: patient[0] (id PAT-INV-0201) gender" in err
    err = error_line(capsys, "scenario", "show", "nope", "--database-url", url)
    assert "no scenario named or with id 'nope'" in err and "healthsim scenario list" in err
    two = tmp_path / "two.json"
    two.write_text(json.dumps({"name": "two", "entities": {"patient": [1, 2]}}))
    err = error_line(capsys, "scenario", "import", str(two), "--database-url", url)
    assert err.startswith("error: 2 problems in the input") and err.endswith(
        "(and 1 more line: run with --debug to see them)"
    )
    assert json.loads(ok("scenario", "list", "--json", "--database-url", url)) == []


def test_delete_asks_unless_yes(imported: str) -> None:
    refused = runner.invoke(app, ["scenario", "delete", NAME, "--database-url", imported], input="n\n")
    assert refused.exit_code == 1 and "Delete the scenario" in refused.output
    assert NAME in ok("scenario", "list", "--database-url", imported)
    assert f"deleted '{NAME}'" in ok("scenario", "delete", NAME, "--database-url", imported, input="y\n")
    ok("scenario", "import", str(FIXTURES / "scenario-canonical.json"), "--database-url", imported)
    assert f"deleted '{NAME}'" in ok("scenario", "delete", NAME, "--yes", "--database-url", imported)
    assert json.loads(ok("scenario", "list", "--json", "--database-url", imported)) == []


def test_delete_lets_the_store_go_while_it_asks(imported: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting for an answer must not hold the DuckDB file (an MCP server may need it)."""
    from healthsim_state.interfaces.cli import scenario
    from healthsim_state.store import query

    monkeypatch.setattr(query, "LOCK_TIMEOUT", 0.2)
    seen = []

    def confirm(text: str, abort: bool) -> bool:
        seen.append(query.run_query("SELECT count(*) FROM scenarios", database_url=imported).rows)
        return True

    monkeypatch.setattr(scenario.typer, "confirm", confirm)
    assert f"deleted '{NAME}'" in ok("scenario", "delete", NAME, "--database-url", imported)
    assert seen == [[(1,)]]


def test_tag(imported: str) -> None:
    assert ok("scenario", "tag", NAME, "--database-url", imported).strip() == (
        f"{NAME}: cross-product, demo, diabetes, heart-failure, round-trip"
    )
    out = ok(
        "scenario",
        "tag",
        NAME,
        "--add",
        "new",
        "--add",
        "two",
        "--remove",
        "demo",
        "--remove",
        "round-trip",
        "--database-url",
        imported,
    )
    assert out.strip() == f"{NAME}: cross-product, diabetes, heart-failure, new, two"
    shown = json.loads(ok("scenario", "show", NAME, "--json", "--database-url", imported))
    assert shown["tags"] == ["cross-product", "diabetes", "heart-failure", "new", "two"]


def test_migrate_legacy_command(
    url: str, isolated_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "no legacy *.json files in" in ok("migrate-legacy", "--database-url", url)
    (isolated_home / "scenarios").mkdir(parents=True, exist_ok=True)
    (isolated_home / "workspaces").mkdir()
    shutil.copy(FIXTURES / "legacy-v1-scenario.json", isolated_home / "scenarios" / "v1.json")
    shutil.copy(FIXTURES / "legacy-v2-workspace.json", isolated_home / "workspaces" / "v2.json")

    out = ok("migrate-legacy", "--dry-run", "--database-url", url)
    assert out.count("│ would-migrate ") == 2
    assert json.loads(ok("scenario", "list", "--json", "--database-url", url)) == []
    assert ok("migrate-legacy", "--status", "--database-url", url).count("│ pending ") == 2

    backup = tmp_path / "backup"
    out = ok("migrate-legacy", "--backup", str(backup), "--database-url", url)
    assert out.count("│ migrated ") == 2 and "copd-clinic-pair" in out and "ed-chest-pain-with-claim" in out
    assert (backup / "scenarios" / "v1.json").is_file()
    assert ok("migrate-legacy", "--database-url", url).count("│ skipped ") == 2
    assert ok("migrate-legacy", "--status", "--database-url", url).count("│ migrated ") == 2
    assert ok("migrate-legacy", "--overwrite", "--database-url", url).count("│ migrated ") == 2

    only = tmp_path / "elsewhere"
    only.mkdir()
    shutil.copy(FIXTURES / "legacy-v1-scenario.json", only / "a.json")
    (only / "b.json").write_text("{not json")
    err = error_line(
        capsys, "migrate-legacy", "--from", str(only), "--from", str(only / "a.json"), "--database-url", url
    )
    assert err.startswith("error: 1 of 2 legacy files failed (see the report above); first: ")
    assert "b.json, line 1, column 2: not valid JSON" in err
    names = [s["name"] for s in json.loads(ok("scenario", "list", "--json", "--database-url", url))]
    assert names == ["copd-clinic-pair", "ed-chest-pain-with-claim"]


def test_the_demo_scenario_round_trips_byte_for_byte(url: str, tmp_path: Path) -> None:
    """The main-job scenario through export, import into an empty store, export again."""
    ok("demo", "--patients", "3", "--database-url", url)
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    ok("scenario", "export", "demo", str(first), "--database-url", url)
    empty = f"duckdb:///{tmp_path / 'empty.duckdb'}"
    assert "imported 'demo'" in ok("scenario", "import", str(first), "--database-url", empty)
    ok("scenario", "export", "demo", str(second), "--database-url", empty)
    assert second.read_bytes() == first.read_bytes()


def test_extra_has_one_key_order_on_both_backends(store_url: str) -> None:
    """PostgreSQL's JSONB stores object keys in its own order (shorter first); DuckDB keeps the given one."""
    from healthsim_models import create_store_engine, session_scope
    from healthsim_state import ScenarioRepository

    extra = {"zeta": 1, "alpha": {"longer_key": [{"b": 1, "a": 2}], "k": 0}, "mid": "x"}
    expected = {"alpha": {"k": 0, "longer_key": [{"a": 2, "b": 1}]}, "mid": "x", "zeta": 1}
    engine = create_store_engine(store_url)
    with session_scope(engine) as session:
        ScenarioRepository(session).save("ordered", {}, extra=extra)
    with session_scope(engine) as session:
        repo = ScenarioRepository(session)
        for info in (repo.scenario_summary("ordered"), repo.load("ordered"), repo.list()[0]):
            assert json.dumps(info.extra) == json.dumps(expected)
    engine.dispose()
    shown = ok("scenario", "show", "ordered", "--json", "--database-url", store_url)
    assert json.dumps(json.loads(shown)["extra"]) == json.dumps(expected)
