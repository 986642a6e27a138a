"""docs/user-guide.md runs as written: every ```python block and every
``healthsim ...`` line of every ```sh block, in document order, as a reader
would type them, in one HealthSim home (the default DuckDB file) and one
working directory. Python blocks share one namespace, like a notebook.

The home starts with the two legacy files of the original tool where it
kept them, as the guide's migration section assumes.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healthsim_state.cli import app
from tests.helpers import FIXTURES

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "user-guide.md"
runner = CliRunner(env={"COLUMNS": "200"})


def blocks() -> list[tuple[str, int, str]]:
    """(language, line number, code) of every python and sh block, in order."""
    text = GUIDE.read_text()
    return [
        (m.group(1), text.count("\n", 0, m.start()) + 1, m.group(2))
        for m in re.finditer(r"^```(python|sh)\n(.*?)^```", text, re.S | re.M)
    ]


def test_the_guide_has_examples_for_every_section() -> None:
    text = GUIDE.read_text()
    for title in ("## Library", "### Scenarios", "## JSON export and import", "## Migrating legacy JSON scenarios"):
        start = text.index(f"\n{title}\n")
        section = text[start : text.find("\n#", start + len(title) + 2)]
        assert re.search(r"```(python|sh)\n", section), f"{title} has no example that runs"


def test_every_example_runs(isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated_home / "scenarios").mkdir(parents=True)
    (isolated_home / "workspaces").mkdir()
    shutil.copy(FIXTURES / "legacy-v1-scenario.json", isolated_home / "scenarios" / "3635caf4-5ecc-4c52-a6de-66f75addcd59.json")
    shutil.copy(FIXTURES / "legacy-v2-workspace.json", isolated_home / "workspaces" / "402e27b8-cb95-42f8-ae34-a83a16acdaff.json")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    namespace: dict[str, object] = {}
    ran = 0
    for language, line, code in blocks():
        if language == "python":
            exec(compile(code, f"{GUIDE.name}, block at line {line}", "exec"), namespace)
            ran += 1
            continue
        for offset, command in enumerate(code.splitlines(), start=1):
            words = shlex.split(command, comments=True)
            if not words or words[0] != "healthsim":
                continue
            result = runner.invoke(app, words[1:])
            where = f"{GUIDE.name}:{line + offset}: {command}"
            assert result.exit_code == 0, f"{where}\n{result.output}{result.stderr}"
            assert result.stderr == "", f"{where}\n{result.stderr}"
            ran += 1
    assert ran >= 20
    # What the examples leave behind: the library's two scenarios, the two
    # migrated legacy files, a backup of each, the exported files.
    from healthsim_state import list_scenarios

    names = {info.name for info in list_scenarios()}
    assert {"diabetes-cohort", "diabetes-cohort-copy", "copd-clinic-pair", "ed-chest-pain-with-claim"} <= names
    assert "cohort-copy" not in names
    assert sorted(p.name for p in (work / "legacy-backup").rglob("*.json")) == [
        "3635caf4-5ecc-4c52-a6de-66f75addcd59.json",
        "402e27b8-cb95-42f8-ae34-a83a16acdaff.json",
    ]
    assert (work / "cohort.json").read_bytes() == (work / "diabetes-cohort.json").read_bytes()
