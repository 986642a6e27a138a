"""The docs run as written: README.md, then each docs/*.md in the order README lists them, every
```python block and every ``healthsim ...`` line of every ```sh block, in document order, as a
reader would type them, in one fresh HealthSim home (the default DuckDB file) and one working
directory, and all of it twice: an example that works only once (saving a name that exists, say)
fails the second round. Python blocks of one document share a namespace, like a notebook.

The working directory holds what the docs tell a reader to bring: the published reference files
(tests/fixtures/reference, under the names they are downloaded as), a Synthea output folder
(tests/fixtures/synthea-27) and the original tool's legacy files where it kept them, as the user
guide's migration section assumes.

Shell lines not run, by rule (``skipped`` says which):

- lines that are not ``healthsim`` commands: installation (python3 -m venv, pip), the test suite,
  benchmarks, ``alembic``, ``claude mcp add``;
- synopses: a placeholder in capitals (``DIR``, ``REV``), an optional part in brackets or
  alternatives joined by ``|``;
- lines that name a PostgreSQL server: the docs' servers (``dbhost``) are not this machine's.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import mcp.client.stdio  # noqa: F401 - see below
import pytest
from typer.testing import CliRunner

from healthsim_state.interfaces.cli import app
from tests.helpers import FIXTURES

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
GUIDE = REPO / "docs" / "user-guide.md"
runner = CliRunner(env={"COLUMNS": "200"})


def documents() -> list[Path]:
    """README.md, then the docs in the order its Documentation section lists them."""
    listed = re.findall(r"^- `(docs/[\w-]+\.md)`", README.read_text(), re.M)
    return [README, *(REPO / name for name in listed)]


def blocks(doc: Path) -> list[tuple[str, int, str]]:
    """(language, line number, code) of every python and sh block, in order."""
    text = doc.read_text()
    return [
        (m.group(1), text.count("\n", 0, m.start()) + 1, m.group(2))
        for m in re.finditer(r"^```(python|sh)\n(.*?)^```", text, re.S | re.M)
    ]


def commands(code: str) -> list[tuple[int, str]]:
    """(offset in the block, line) of each shell command, continuation lines joined."""
    found: list[tuple[int, str]] = []
    pending, start = "", 0
    for offset, line in enumerate(code.splitlines(), start=1):
        if not pending:
            start = offset
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        found.append((start, pending + line))
        pending = ""
    return found


def skipped(words: list[str]) -> str | None:
    """Why a shell command is not run (the rules of the module docstring), or None."""
    if not words or words[0] != "healthsim":
        return "not a healthsim command"
    if any(re.fullmatch(r"[A-Z][A-Z_]+", w) or "[" in w or "|" in w for w in words):
        return "a synopsis"
    if any("postgresql" in w for w in words):
        return "names a PostgreSQL server"
    return None


def prepare(home: Path, work: Path) -> None:
    (home / "scenarios").mkdir(parents=True)
    (home / "workspaces").mkdir()
    for fixture, folder, name in [
        ("legacy-v1-scenario.json", "scenarios", "3635caf4-5ecc-4c52-a6de-66f75addcd59.json"),
        ("legacy-v2-workspace.json", "workspaces", "402e27b8-cb95-42f8-ae34-a83a16acdaff.json"),
    ]:
        shutil.copy(FIXTURES / fixture, home / folder / name)
    for published in (FIXTURES / "reference").glob("*.csv"):
        shutil.copy(published, work / published.name)
    # The Synthea output the user guide imports.
    shutil.copytree(FIXTURES / "synthea-27", work / "synthea-27")
    # The other SVI release docs/reference-data.md loads in place of 2022; both share one header.
    shutil.copy(FIXTURES / "reference" / "SVI_2022_US_county.csv", work / "SVI_2020_US_county.csv")


def run_all(round_: int) -> tuple[int, set[str]]:
    """Every example of every document; the number run and why lines were skipped."""
    ran, reasons = 0, set()
    for doc in documents():
        namespace: dict[str, object] = {"__name__": "docs_example"}
        for language, line, code in blocks(doc):
            where = f"round {round_}, {doc.relative_to(REPO)}, block at line {line}"
            if language == "python":
                exec(compile(code, where, "exec"), namespace)
                ran += 1
                continue
            for offset, command in commands(code):
                words = shlex.split(command, comments=True)
                if reason := skipped(words):
                    reasons.add(reason)
                    continue
                result = runner.invoke(app, words[1:], input="")
                shown = f"{where}+{offset}: {command}"
                assert result.exit_code == 0, f"{shown}\n{result.output}{result.stderr}"
                assert result.stderr == "", f"{shown}\n{result.stderr}"
                ran += 1
    return ran, reasons


def test_every_document_is_listed_in_the_readme() -> None:
    assert sorted(documents()[1:]) == sorted((REPO / "docs").glob("*.md"))


def test_the_guide_has_examples_for_every_section() -> None:
    text = GUIDE.read_text()
    for title in ("## Library", "### Scenarios", "## JSON export and import", "## Migrating legacy JSON scenarios"):
        start = text.index(f"\n{title}\n")
        section = text[start : text.find("\n#", start + len(title) + 2)]
        assert re.search(r"```(python|sh)\n", section), f"{title} has no example that runs"


def test_the_skip_rules() -> None:
    assert skipped(shlex.split("alembic upgrade head")) == "not a healthsim command"
    assert skipped(shlex.split("healthsim db downgrade REV")) == "a synopsis"
    assert skipped(shlex.split('healthsim query "SELECT ..." [--format table|csv|json]')) == "a synopsis"
    assert skipped(shlex.split("healthsim mcp --database-url postgresql+psycopg://me@dbhost/x")) == (
        "names a PostgreSQL server"
    )
    assert skipped(shlex.split('healthsim query "SELECT name FROM scenarios" --format json')) is None
    assert commands("a \\\n  b\nc") == [(1, "a    b"), (3, "c")]


def test_every_example_runs_twice_in_one_store(
    isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # The MCP example starts `healthsim mcp` with this process's stderr, which must be a real file
    # (capfd), as the SDK's stdio_client bound it when first imported (above, not inside a CliRunner call).
    work = tmp_path / "work"
    work.mkdir()
    prepare(isolated_home, work)
    monkeypatch.chdir(work)
    ran, reasons = run_all(1)
    assert ran >= 35
    assert run_all(2) == (ran, reasons)
    assert reasons == {"not a healthsim command", "a synopsis", "names a PostgreSQL server"}
    # What the examples leave behind: the library's scenarios, the two migrated legacy files,
    # a backup of each, the exported files.
    from healthsim_state import list_scenarios

    names = {info.name for info in list_scenarios()}
    assert {
        "first-steps",
        "three-visits",
        "diabetes-cohort",
        "diabetes-cohort-copy",
        "copd-clinic-pair",
        "ed-chest-pain-with-claim",
        "gulf-coast-diabetes",
        "demo",
        "cohort-250",
        "synthea-27",
    } <= names
    assert "cohort-copy" not in names
    assert sorted(p.name for p in (work / "legacy-backup").rglob("*.json")) == [
        "3635caf4-5ecc-4c52-a6de-66f75addcd59.json",
        "402e27b8-cb95-42f8-ae34-a83a16acdaff.json",
    ]
    assert (work / "cohort.json").read_bytes() == (work / "diabetes-cohort.json").read_bytes()
