"""The ``healthsim`` command line.

Each command group lives in its own module; this one assembles them and turns
errors into one readable line (a traceback only with ``--debug``).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from healthsim_models.audit import acting_as
from healthsim_models.errors import HealthSimError, ScenarioNotFoundError
from healthsim_state.interfaces.cli import analytics, db, entity, reference
from healthsim_state.interfaces.cli import audit as audit_command
from healthsim_state.interfaces.cli import demo as demo_command
from healthsim_state.interfaces.cli import history as history_command
from healthsim_state.interfaces.cli import imports as import_command
from healthsim_state.interfaces.cli import lake as lake_command
from healthsim_state.interfaces.cli import legacy as legacy_command
from healthsim_state.interfaces.cli import mcp as mcp_command
from healthsim_state.interfaces.cli import query as query_command
from healthsim_state.interfaces.cli import scenario as scenario_command
from healthsim_state.interfaces.cli.command import HealthsimGroup

app = typer.Typer(
    name="healthsim",
    help="HealthSim Store: synthetic healthcare scenarios on DuckDB or PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=HealthsimGroup,
)
app.command(name="audit")(audit_command.audit)
app.add_typer(db.app, name="db")
app.add_typer(entity.app, name="entity")
app.add_typer(history_command.app, name="history")
app.command(name="demo")(demo_command.demo)
app.add_typer(import_command.app, name="import")
app.add_typer(lake_command.app, name="lake")
app.add_typer(reference.app, name="reference")
app.add_typer(scenario_command.app, name="scenario")
app.command(name="migrate-legacy")(legacy_command.migrate_legacy_command)
app.command(name="query")(query_command.query)
app.command(name="mcp")(mcp_command.mcp)
app.add_typer(analytics.app, name="analytics")

_options = {"debug": False}
_stderr = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        try:
            number = package_version("healthsim-store")
        except PackageNotFoundError:  # run from a source tree that was never installed
            number = "unknown (not installed)"
        typer.echo(f"healthsim-store {number}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error."),
    _version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
    ),
) -> None:
    _options["debug"] = debug
    # Every event this command records names the CLI and the OS user, until the command ends.
    ctx.with_resource(acting_as("cli"))


#: Appended to every error that is not one of the project's: only the traceback says more.
_DEBUG_HINT = "run with --debug for the traceback"
#: Modules whose exceptions come from the database layer; their text is for --debug only.
_DATABASE_MODULES = ("sqlalchemy", "psycopg", "duckdb", "_duckdb", "alembic")


def _message(exc: BaseException) -> str:
    """The one line an error becomes: a project error's own first line (with a CLI hint where the
    library's hint names a Python function); for anything else a plain description, never the
    text of a driver or of Python internals, which only --debug shows."""
    if isinstance(exc, ScenarioNotFoundError) and exc.name is not None:
        return f"no scenario named or with id {exc.name!r}; list them with 'healthsim scenario list'"
    if isinstance(exc, HealthSimError):
        lines = str(exc).strip().splitlines() or [type(exc).__doc__ or "failed"]
        more = len(lines) - 1
        tail = f" (and {more} more line{'s' if more > 1 else ''}: run with --debug to see them)" if more else ""
        return lines[0] + tail
    if isinstance(exc, UnicodeError):
        return f"a text value is not valid Unicode: it holds a lone surrogate such as \\udcff ({_DEBUG_HINT})"
    if isinstance(exc, MemoryError):
        return f"out of memory ({_DEBUG_HINT})"
    if _from_database(exc):
        return f"the database failed in a way this command does not handle ({_DEBUG_HINT}, and please report it)"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where} ({_DEBUG_HINT})"
    return f"unexpected internal error ({_DEBUG_HINT}, and please report it)"


def _from_database(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__module__.split(".")[0] in _DATABASE_MODULES:
            return True
        current = current.__cause__ or current.__context__
    return False


def _is_usage_error(exc: typer.TyperException) -> bool:
    """Whether a click exception is a usage error (click's ``UsageError`` and its
    subclasses: bad or missing parameters, unknown options). typer vendors
    click and exports none of them but ``BadParameter``; a usage error is the
    kind that carries its context and exits with status 2."""
    return getattr(exc, "exit_code", None) == 2 and hasattr(exc, "ctx")


def _usage_message(exc: typer.TyperException) -> str:
    """click's message, with typer's pydantic wording ("Input should be ...", "Value error, ...")
    said as a command line says it."""
    cause = exc.__cause__
    if isinstance(exc, typer.BadParameter) and hasattr(cause, "errors"):
        errors = cause.errors()
        if errors:
            exc.message = _plain(errors[0])
    return " ".join(exc.format_message().split()).rstrip(".")  # the hint follows


def _plain(error: dict) -> str:
    kind, value, ctx = error.get("type"), error.get("input"), error.get("ctx") or {}
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"]).rstrip(".")
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{value!r} is not a whole number"
    if kind in ("float_parsing", "float_type", "decimal_parsing"):
        return f"{value!r} is not a number"
    if kind == "bool_parsing":
        return f"{value!r} is not true or false"
    bounds = {
        "greater_than_equal": "less than the minimum of",
        "greater_than": "not more than",
        "less_than_equal": "more than the maximum of",
        "less_than": "not less than",
    }
    if kind in bounds:
        return f"{value} is {bounds[kind]} {next(iter(ctx.values()), '?')}"
    text = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{value!r}: {text[:1].lower()}{text[1:]}"


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug belongs to the root command, but people add it at the end of the line they just ran.
    end = args.index("--") if "--" in args else len(args)
    if "--debug" in args[1:end]:
        args = ["--debug", *(a for i, a in enumerate(args) if not (i < end and a == "--debug"))]
        _options["debug"] = True  # also for errors raised before the root callback runs
    try:
        # Not standalone: click hands usage errors and aborts back here instead of printing its box.
        status = app(args=args, prog_name="healthsim", standalone_mode=False)
        sys.stdout.flush()  # a reader that closed the pipe shows up here at the latest
    except typer.TyperException as exc:  # click's own errors
        # `healthsim scenario`: the group's help, as click does. Told apart by
        # name, as typer's own rich_utils does: click's class is not exported.
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.stdout.write(exc.format_message() + "\n")
            sys.exit(2)
        if not _is_usage_error(exc):
            _fail(exc)
        context = exc.ctx  # type: ignore[attr-defined]
        command = context.command_path if context is not None else _command_path(args)
        _error_line("error", f"{_usage_message(exc)} (see '{command} --help')")
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except typer.Abort:  # EOF at a prompt
        _error_line("aborted", "")
        sys.exit(1)
    except SystemExit as exc:
        # typer answers a closed stdout (`healthsim query ... | head -1`) with exit 1 while handling
        # the EPIPE; the reader wanting no more is the usual Unix case for a quiet success.
        if _broken_pipe(exc.__context__):
            _quiet_stdout()
            sys.exit(0)
        raise
    except BrokenPipeError:
        _quiet_stdout()
        sys.exit(0)
    except Exception as exc:  # reported, never swallowed: exit status 1
        _fail(exc)
    # Non-standalone typer returns the code of a typer.Exit (0 after --help); Ctrl-C arrives as 130.
    if status == _INTERRUPTED:
        _error_line("aborted", "interrupted")
        sys.exit(_INTERRUPTED)
    if isinstance(status, int) and status:
        sys.exit(status)


def _fail(exc: Exception) -> NoReturn:
    """Report an error as one line and exit with status 1 (with --debug: raise it)."""
    if _options["debug"]:
        raise exc
    _error_line("error", _message(exc))
    sys.exit(1)


def _command_path(args: list[str]) -> str:
    """``healthsim`` and the command words that lead ``args`` (for errors click raises without a context)."""
    words, command = ["healthsim"], typer.main.get_command(app)
    for arg in args:
        sub = getattr(command, "commands", {}).get(arg)
        if sub is None:
            if arg.startswith("-"):
                continue  # a root option such as --debug
            break
        words.append(arg)
        command = sub
    return " ".join(words)


#: The exit status typer gives Ctrl-C (128 + SIGINT), as shells do.
_INTERRUPTED = 130


def _error_line(kind: str, message: str) -> None:
    # Text from the command line may hold lone surrogates (bytes that are not UTF-8): shown escaped.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    text = f"[bold red]{kind}:[/] {escape(message)}" if message else f"[bold red]{kind}[/]"
    _stderr.print(text, markup=True, highlight=False, soft_wrap=True)


def _broken_pipe(exc: BaseException | None) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EPIPE


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
