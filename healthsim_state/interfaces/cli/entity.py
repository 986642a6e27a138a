"""``healthsim entity``: one entity, now or at a past time, and its versions."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.table import Table

from healthsim_models.errors import EntityNotFoundError
from healthsim_models.registry import entity_type
from healthsim_state.interfaces.cli.history import TIME_HELP, parse_time, when
from healthsim_state.interfaces.cli.options import DatabaseUrl
from healthsim_state.interfaces.cli.session import store_session
from healthsim_state.interfaces.cli.terminal import console
from healthsim_state.store.readonly import json_value
from healthsim_state.store.repository import EntityVersion, ScenarioRepository

app = typer.Typer(help="Entities: show one, now or as it was, and list its versions.", no_args_is_help=True)

TYPE_HELP = "Entity type, singular or plural (patient, claims, ...)."
ID_HELP = "The entity's store UUID, document id, or business key (an MRN, a claim id)."


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(json_value(value), ensure_ascii=False, indent=2))


def _version_json(number: int, version: EntityVersion) -> dict[str, Any]:
    return {
        "version": number,
        "id": version.id,
        "valid_from": version.valid_from,
        "valid_to": version.valid_to,
        "ended_by": version.ended_by,
        "write_id": version.write_id,
        "document": version.document,
    }


@app.command()
def history(
    type: str = typer.Argument(..., help=TYPE_HELP),  # named for the usage line: TYPE ID
    id: str = typer.Argument(..., help=ID_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the versions, with their documents, as JSON."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """List the versions of one entity kept in the history, oldest first, the current one last."""
    et = entity_type(type)
    with store_session(database_url) as session:
        versions = ScenarioRepository(session).history(et.name, id)
    if not versions:
        raise EntityNotFoundError(f"no {et.name} {id!r} in the store or its history")
    if as_json:
        _print_json([_version_json(n, v) for n, v in enumerate(versions, 1)])
        return
    table = Table("version", "valid from", "valid to", "ended by", "write", title=f"{et.name} {versions[0].id}")
    for number, version in enumerate(versions, 1):
        table.add_row(
            str(number),
            when(version.valid_from),
            when(version.valid_to) or "(current)",
            version.ended_by or "",
            str(version.write_id or ""),
        )
    console().print(table)


@app.command()
def show(
    type: str = typer.Argument(..., help=TYPE_HELP),  # named for the usage line: TYPE ID
    id: str = typer.Argument(..., help=ID_HELP),
    as_of: str | None = typer.Option(
        None, "--as-of", metavar="TIME", callback=parse_time, help=f"Show it as it was then. {TIME_HELP}"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the document as JSON (the default prints it indented)."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Show one entity's document, as it is or (--as-of) as it was at a past time."""
    et = entity_type(type)
    at: Any = as_of  # a datetime: parse_time converted it
    with store_session(database_url) as session:
        repo = ScenarioRepository(session)
        document = repo.find_entity(et.name, id) if at is None else repo.entity_as_of(et.name, id, at)
    if document is None:
        then = "" if at is None else f" at {when(at)}"
        raise EntityNotFoundError(f"no {et.name} {id!r} was stored{then}")
    if as_json:
        typer.echo(json.dumps(json_value(document), ensure_ascii=False))
        return
    _print_json(document)
