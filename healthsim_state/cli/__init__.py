"""The ``healthsim`` command line.

Each command group lives in its own module; this one assembles them and turns
errors into one readable line (a traceback only with ``--debug``).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Sequence

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.exceptions import NoArgsIsHelpError, UsageError  # typer 0.29 vendors click

from healthsim_models.errors import HealthSimError
from healthsim_state.cli import db
from healthsim_state.cli import legacy as legacy_command
from healthsim_state.cli import scenario as scenario_command
from healthsim_state.cli import demo as demo_command
from healthsim_state.cli import query as query_command
from healthsim_state.cli import mcp as mcp_command
from healthsim_state.cli import reference

app = typer.Typer(
    name="healthsim",
    help="HealthSim Store: synthetic healthcare scenarios on DuckDB or PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.command(name="demo")(demo_command.demo)
app.add_typer(reference.app, name="reference")
app.add_typer(scenario_command.app, name="scenario")
app.command(name="migrate-legacy")(legacy_command.migrate_legacy_command)
app.command(name="query")(query_command.query)
app.command(name="mcp")(mcp_command.mcp)

_options = {"debug": False}
_stderr = Console(stderr=True)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error."),
) -> None:
    _options["debug"] = debug


def _hint(exc: BaseException) -> str:
    if isinstance(exc, HealthSimError):
        return ""
    return " (run with --debug for the traceback)"


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug belongs to the root command, but people add it at the end of the line they just ran.
    end = args.index("--") if "--" in args else len(args)
    if "--debug" in args[1:end]:
        args = ["--debug", *(a for i, a in enumerate(args) if not (i < end and a == "--debug"))]
    try:
        # Not standalone: click hands usage errors and aborts back here instead of printing its box.
        status = app(args=args, prog_name="healthsim", standalone_mode=False)
        sys.stdout.flush()  # a reader that closed the pipe shows up here at the latest
    except NoArgsIsHelpError as exc:  # `healthsim scenario`: the group's help, as click does
        sys.stdout.write(exc.format_message() + "\n")
        sys.exit(2)
    except UsageError as exc:  # includes BadParameter, missing arguments, unknown options
        command = exc.ctx.command_path if exc.ctx is not None else "healthsim"
        message = " ".join(exc.format_message().split())
        _error_line("error", f"{message} (see '{command} --help')")
        sys.exit(exc.exit_code)
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
    except Exception as exc:  # reported below, never swallowed: exit status 1
        if _options["debug"]:
            raise
        kind = "error" if isinstance(exc, HealthSimError) else f"error ({type(exc).__name__})"
        lines = str(exc).strip().splitlines()
        message = lines[0] if lines else repr(exc)
        hint = _hint(exc)
        if len(lines) > 1 and not hint:  # e.g. one line per further validation problem
            hint = f" (and {len(lines) - 1} more line{'s' if len(lines) > 2 else ''}: run with --debug to see them)"
        _error_line(kind, f"{message}{hint}")
        sys.exit(1)
    # Non-standalone typer returns the code of a typer.Exit (0 after --help); Ctrl-C arrives as 130.
    if status == _INTERRUPTED:
        _error_line("aborted", "interrupted")
        sys.exit(_INTERRUPTED)
    if isinstance(status, int) and status:
        sys.exit(status)


#: The exit status typer gives Ctrl-C (128 + SIGINT), as shells do.
_INTERRUPTED = 130


def _error_line(kind: str, message: str) -> None:
    text = f"[bold red]{kind}:[/] {escape(message)}" if message else f"[bold red]{kind}[/]"
    _stderr.print(text, markup=True, highlight=False, soft_wrap=True)


def _broken_pipe(exc: BaseException | None) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EPIPE


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
