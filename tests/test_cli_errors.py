"""Every ``healthsim`` command, found in the typer app, run with bad arguments and shown with --help.

A bad invocation must end with a non-zero exit status and exactly one line on
stderr, ``error: ...``, with no traceback, no driver or Python exception class
and no pydantic wording anywhere in the output. The cases are derived from
each command's parameters (types, ranges, choices, flags, arguments), so a
new command or option is covered when it is added; what a parameter means
(a scenario name, a file, a revision) comes from ``MEANINGS``, which must
name every argument the app has.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

import pytest
import typer
from typer._click import Command

from healthsim_state.interfaces.cli import app, main

ROOT = typer.main.get_command(app)

UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/x"

#: What an error line must never show: tracebacks, driver and Python exception classes, pydantic's words.
LEAKS = re.compile(
    r"Traceback|psycopg(?!://)|duckdb\.\w*(Exception|Error)|_duckdb|sqlalchemy|alembic|pydantic"
    r"|\b\w*(OperationalError|ProgrammingError|DataError|IntegrityError|InternalError|DatabaseError"
    r"|InterfaceError|CommandError|UnicodeEncodeError|UnicodeDecodeError|KeyError|TypeError|ValueError"
    r"|AttributeError|IndexError|RuntimeError|OSError|Exception)\b"
    r"|Input should be|Value error,|error \(",
)


def commands(command: Command = ROOT, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    """(words, command) of every leaf command of the app."""
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in subcommands.items():
            yield from commands(sub, (*path, name))
    else:
        yield path, command


LEAVES = dict(commands())


def meanings(tmp: Path) -> dict[str, str]:
    """A value for each argument that names something that does not exist (or cannot work)."""
    return {
        "name": "no-such-scenario",
        "file": str(tmp / "no-such-file.json"),
        "dataset": "no_such_dataset",
        "revision": "no-such-revision",
        "sql": "SELEC 1",
        "directory": str(tmp / "no-such-folder"),
        "scenarios": "no-such-scenario",
        "type": "no_such_type",
        "id": "no-such-entity",
        "key": "no.such.setting",
        "value": "no-such-value",
        "target": "ftp://nowhere/no-such-lake",
        "path": str(tmp / "no-such-folder" / "backup"),  # backup: its parent is missing; restore: no backup there
    }


def arguments(command: Command, tmp: Path) -> list[str]:
    """The command's required arguments, each given a value that names nothing."""
    known = meanings(tmp)
    return [known[p.name] for p in command.params if p.param_type_name == "argument" and p.required]


def check_error(argv: list[str], capsys: pytest.CaptureFixture[str], usage: bool = False) -> str | None:
    """None when ``healthsim argv`` fails as it should, else what is wrong. A usage error (``usage``)
    exits with status 2 and points to the help of the command it is about."""
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:
        return f"{argv}: raised {type(exc).__name__}: {exc}"
    else:
        code = 0
    captured = capsys.readouterr()
    err_lines = captured.err.strip().splitlines()
    problems = []
    if not code:
        problems.append(f"exit status {code!r}")
    if len(err_lines) != 1 or not err_lines[0].startswith("error: "):
        problems.append(f"stderr is not one 'error: ...' line: {captured.err!r}")
    if usage:
        words = next((w for w in sorted(LEAVES, key=len, reverse=True) if list(w) == argv[: len(w)]), ())
        hint = f"(see '{' '.join(['healthsim', *words])} --help')"
        if code != 2 or not captured.err.strip().endswith(hint):
            problems.append(f"not a usage error (status 2) ending {hint}: {code}, {captured.err!r}")
    if leak := LEAKS.search(captured.out + captured.err):
        problems.append(f"shows {leak.group(0)!r}: {captured.err.strip()!r}")
    return f"{argv}: {'; '.join(problems)}" if problems else None


def usage_cases(tmp: Path) -> list[list[str]]:
    """Bad invocations derived from each command's parameters; all fail before any store is opened."""
    cases: list[list[str]] = [["no-such-command"], ["--no-such-option"]]
    for words, command in LEAVES.items():
        args = arguments(command, tmp)
        positional = [p for p in command.params if p.param_type_name == "argument"]
        every = [meanings(tmp)[p.name] for p in positional]
        cases.append([*words, *args, "--no-such-option"])
        if not any(p.nargs == -1 for p in positional):  # a variadic argument takes any number
            cases.append([*words, *every, "unexpected-extra-argument"])
        if args:
            cases.append(list(words))  # missing arguments
        for param in command.params:
            desc = param.type_descriptor
            if param.param_type_name == "argument":
                if desc.annotation is str and param.name != "file":
                    given = [v if p is not param else "bad-\udcff" for p, v in zip(positional, every, strict=True)]
                    cases.append([*words, *given])
                continue
            option = param.opts[0]
            if param.is_flag:
                cases.append([*words, *args, f"{option}=yes"])
                continue
            cases.append([*words, *args, option])  # the value is missing
            annotation = desc.annotation
            if desc.is_list:
                annotation = annotation.__args__[0]
            if annotation is int:
                cases.append([*words, *args, option, "abc"])
                cases.append([*words, *args, option, "1.5"])
                if param.min is not None:
                    cases.append([*words, *args, option, str(param.min - 1)])
                if param.max is not None:
                    cases.append([*words, *args, option, str(param.max + 1)])
            elif isinstance(annotation, type) and issubclass(annotation, Enum):
                cases.append([*words, *args, option, "xml"])
            elif annotation is str:
                cases.append([*words, *args, option, "bad-\udcff"])
    return cases


def url_cases(tmp: Path) -> list[list[str]]:
    """Every command that takes --database-url, with URLs that cannot work."""
    folder = tmp / "a-folder"
    folder.mkdir()
    garbage = tmp / "garbage.duckdb"
    garbage.write_bytes(b"this is not a database file\n" * 100)
    never = ["not a url", "nosuch://x", "http://example.com/db", "sqlite:///x.db"]  # no store can be there
    not_now = [  # nothing usable there now
        UNREACHABLE,
        "postgresql+psycopg://nobody@:0/",
        "postgresql+psycopg://nobody@127.0.0.1:99999/x",
        f"duckdb:///{folder}",
        f"duckdb:///{garbage}",
    ]
    cases = []
    for words, command in LEAVES.items():
        if any(p.name == "database_url" for p in command.params):
            # The MCP server starts on a store it cannot open yet and answers each call with
            # what is wrong (tests/test_error_paths.py); only a URL that can never work stops it.
            for url in never if words == ("mcp",) else never + not_now:
                cases.append([*words, *arguments(command, tmp), "--database-url", url])
    return cases


def store_cases(tmp: Path, url: str) -> list[list[str]]:
    """Against a working store: arguments naming nothing, files that are not what they should be,
    values out of what the store takes."""
    not_json = tmp / "not-json.json"
    not_json.write_text("{ this is not JSON")
    not_csv = tmp / "not-svi.csv"
    not_csv.write_text("a,b\n1,2\n")
    legacy = tmp / "legacy"
    legacy.mkdir()
    (legacy / "broken.json").write_text("[1, 2")
    cases = [[*words, *arguments(command, tmp)] for words, command in LEAVES.items() if arguments(command, tmp)]
    cases += [
        ["scenario", "import", str(not_json)],
        ["scenario", "import", str(tmp)],  # a folder
        ["scenario", "import", str(not_json), "--as", ""],
        ["scenario", "export", "no-such-scenario", str(tmp / "no-such-folder" / "out.json")],
        ["scenario", "tag", "no-such-scenario", "--add", "x"],
        ["scenario", "delete", "no-such-scenario", "--yes"],
        ["reference", "load", "svi_county", str(not_csv)],
        ["reference", "load", "svi_county", str(tmp / "no-such.csv")],
        ["reference", "load", "svi_county", str(tmp)],
        ["migrate-legacy", "--from", str(tmp / "no-such-folder")],
        ["migrate-legacy", "--from", str(legacy)],
        ["migrate-legacy", "--status", "--backup", str(tmp / "backup")],
        ["demo", "--patients", str(10**30)],
        ["demo", "--name", ""],
        ["demo", "--name", "  "],
        ["db", "upgrade", "no-such-revision"],
        ["db", "downgrade", "+99"],
        ["entity", "show", "patient", "no-such-entity"],
        ["entity", "show", "patient", "no-such-entity", "--as-of", "2000-01-01"],
        ["entity", "history", "patient", "no-such-entity"],
        ["scenario", "restore", "no-such-scenario", "--as-of", "2000-01-01"],
        ["history", "setting", "history.keep_days", "-3"],
        ["history", "setting", "history.enabled", "maybe"],
        ["query", "SELECT 1; SELECT 2"],
        ["query", "SELECT * FROM no_such_table"],
        ["query", "DELETE FROM patients"],
        ["query", ""],
        ["import", "synthea", str(tmp), "--scenario", "empty-folder"],
        ["import", "synthea", str(not_json), "--scenario", "a-file"],
        ["import", "synthea", str(legacy), "--scenario", ""],
        ["analytics", "omop", "--vocabulary", str(tmp / "no-such-folder")],
        ["analytics", "omop", "--vocabulary", str(legacy)],
        ["analytics", "omop", "--vocabulary", str(not_json)],
        ["analytics", "omop", "--schema", "Not-A-Schema"],
        ["analytics", "omop", "--schema", "main"],
        ["analytics", "summary"],
        ["analytics", "summary", "--schema", "no_such_schema"],
        ["analytics", "star", "no-such-scenario"],
    ]
    return [[*case, "--database-url", url] for case in cases]


def test_meanings_name_every_argument(tmp_path: Path) -> None:
    """A new argument needs a value that names nothing here, so that it is tried too."""
    names = {p.name for c in LEAVES.values() for p in c.params if p.param_type_name == "argument"}
    assert names <= set(meanings(tmp_path)), names - set(meanings(tmp_path))
    assert len(LEAVES) >= 16 and ("scenario", "import") in LEAVES and ("db", "history") in LEAVES


def test_usage_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = usage_cases(tmp_path)
    assert len(cases) > 100
    failures = [f for case in cases if (f := check_error(case, capsys, usage=True))]
    assert not failures, "\n".join(failures)


def test_bad_database_urls_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    failures = [f for case in url_cases(tmp_path) if (f := check_error(case, capsys))]
    assert not failures, "\n".join(failures)


def test_bad_values_against_a_store_are_one_line(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failures = [f for case in store_cases(tmp_path, store_url) if (f := check_error(case, capsys))]
    assert not failures, "\n".join(failures)


def test_an_unknown_scenario_points_to_the_command_line(duckdb_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for words in (["show"], ["export"], ["delete", "--yes"], ["tag", "--add", "x"]):
        with pytest.raises(SystemExit):
            main(["scenario", *words[:1], "no-such", *words[1:], "--database-url", duckdb_url])
        err = capsys.readouterr().err.strip()
        assert err == "error: no scenario named or with id 'no-such'; list them with 'healthsim scenario list'"


def test_an_unexpected_error_says_what_to_do_without_its_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors that are not the project's show neither their class nor their message, which may be a driver's."""
    import duckdb

    def failing(*args: object, **kwargs: object) -> None:
        raise duckdb.InternalException("INTERNAL Error: something in the engine")

    monkeypatch.setattr("healthsim_state.interfaces.cli.query.run_query", failing)
    with pytest.raises(SystemExit) as exit_info:
        main(["query", "SELECT 1"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: the database failed in a way this command does not handle "
        "(run with --debug for the traceback, and please report it)"
    )

    def buggy(*args: object, **kwargs: object) -> None:
        raise KeyError("some_internal_key")

    monkeypatch.setattr("healthsim_state.interfaces.cli.query.run_query", buggy)
    with pytest.raises(SystemExit):
        main(["query", "SELECT 1"])
    err = capsys.readouterr().err.strip()
    assert err == "error: unexpected internal error (run with --debug for the traceback, and please report it)"
    with pytest.raises(KeyError):
        main(["query", "SELECT 1", "--debug"])


# -- help -----------------------------------------------------------------------


def render_help(words: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    main([*words, "--help"])
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def every_command(command: Command = ROOT, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Command]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from every_command(sub, (*path, name))


@pytest.mark.parametrize("words", [w for w, _ in every_command()], ids=lambda w: " ".join(w) or "healthsim")
def test_help_reads_as_a_command_line_help(
    words: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    command = dict(every_command())[words]
    text = render_help(words, capsys, monkeypatch)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert not re.search(r"<\w[^>]*>", text), "typer's <type> labels"
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage
    for param in command.params:
        if param.param_type_name == "argument":
            shown = param.name.upper() if param.required else f"[{param.name.upper()}]"
            assert f" {shown}" in usage, usage
        elif getattr(param, "min", None) is not None or getattr(param, "max", None) is not None:
            # A range stays on one line: "[x>=1]", never broken inside.
            bound = f"[x>={param.min}]" if param.max is None else f"[{param.min}<=x<={param.max}]"
            assert bound in text, f"{param.name}: {bound} not on one line in\n{text}"
    assert "BOOLEAN" not in text, "a flag takes no value: it shows no type"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    main(["--version"])
    assert capsys.readouterr().out == f"healthsim-store {version('healthsim-store')}\n"
