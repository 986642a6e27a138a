"""``healthsim scenario``: list, show, export, import, delete and tag scenarios."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import Session

from healthsim_models.errors import InvalidArgumentError, ScenarioNotFoundError
from healthsim_models.registry import ENTITY_TYPES
from healthsim_state.formats.json import export_scenario, import_scenario
from healthsim_state.interfaces.cli.history import TIME_HELP, parse_time, when
from healthsim_state.interfaces.cli.options import DatabaseUrl
from healthsim_state.interfaces.cli.session import store_session, store_write
from healthsim_state.interfaces.cli.terminal import console, progress
from healthsim_state.interfaces.rendering import scenario_json
from healthsim_state.store.repository import ScenarioInfo, ScenarioRepository
from healthsim_state.store.transaction import DEFAULT_ATTEMPTS

T = TypeVar("T")

#: The largest number a database's LIMIT and OFFSET take (a signed 64-bit integer).
_MOST = 2**63 - 1

app = typer.Typer(help="Scenarios: list, show, export, import, delete, tag.", no_args_is_help=True)


def _when(value: dt.datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()


def _print_json(value: Any) -> None:
    # Plain echo: a rich console would wrap long lines.
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


@app.command("list")
def list_(
    tag: list[str] = typer.Option([], "--tag", "-t", help="Only scenarios with this tag (repeat: all of them)."),
    search: str | None = typer.Option(None, "--search", "-s", help="Text the name or description contains (any case)."),
    limit: int = typer.Option(100, "--limit", min=1, help="At most this many scenarios."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many first."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array instead of a table."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """List scenarios by name, with their entity counts and tags."""
    # Beyond what a 64-bit integer holds no store has scenarios: clamped, so that limit + 1 (asked
    # for below) and offset reach the database as numbers it takes.
    limit, offset = min(limit, _MOST - 1), min(offset, _MOST)
    with store_session(database_url) as session:
        # One more than asked says whether the table must mention the rest.
        infos = ScenarioRepository(session).list(tag=tag or None, search=search, limit=limit + 1, offset=offset)
    more, infos = len(infos) > limit, infos[:limit]
    if as_json:
        _print_json([scenario_json(i) for i in infos])
        return
    if not infos:
        console().print(
            "no scenarios" + (" match" if tag or search else " yet; create one with 'healthsim demo'"), markup=False
        )
        return
    table = Table()
    table.add_column("name", overflow="fold", min_width=12)
    table.add_column("entities", justify="right", no_wrap=True)
    table.add_column("tags", overflow="fold")
    table.add_column("created", no_wrap=True)
    table.add_column("description", no_wrap=True, overflow="ellipsis", max_width=30)
    for info in infos:
        table.add_row(
            Text(info.name),
            str(sum(info.entity_counts.values())),
            Text(", ".join(info.tags)),
            _when(info.created_at)[:10],
            Text(info.description or ""),
        )
    console().print(table)
    if more:
        console().print(f"more scenarios follow: --offset {offset + limit}", highlight=False, markup=False)


@app.command()
def show(
    name: str = typer.Argument(..., help="Scenario name or id."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Show a scenario's metadata and its entities per type."""
    with store_session(database_url) as session:
        info = ScenarioRepository(session).scenario_summary(name)
    if as_json:
        _print_json(scenario_json(info))
        return
    out = console()
    out.print(f"name:        {info.name}", highlight=False, markup=False)
    out.print(f"id:          {info.id}", highlight=False, markup=False)
    out.print(f"description: {info.description or ''}", highlight=False, markup=False)
    out.print(f"tags:        {', '.join(info.tags)}", highlight=False, markup=False)
    out.print(f"created:     {_when(info.created_at)}", highlight=False, markup=False)
    out.print(f"updated:     {_when(info.updated_at)}", highlight=False, markup=False)
    for key, value in sorted((info.extra or {}).items()):
        out.print(f"{key}: {json.dumps(value, ensure_ascii=False)}", highlight=False, markup=False)
    table = Table("type", "entities", title="Entities", title_justify="left")
    for et in ENTITY_TYPES:
        if info.entity_counts.get(et.name):
            table.add_row(et.name, str(info.entity_counts[et.name]))
    table.add_row("total", str(sum(info.entity_counts.values())), style="bold")
    out.print(table)


@app.command()
def export(
    name: str = typer.Argument(..., help="Scenario name or id."),
    file: str = typer.Argument("-", help="File to write; '-' (the default) writes to standard output."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace FILE if it exists."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Write a scenario as a versioned JSON document (streamed, entity by entity)."""
    if file != "-" and Path(file).exists() and not overwrite:
        raise InvalidArgumentError(f"{file} exists; pass --overwrite to replace it")
    with store_session(database_url) as session:
        if file == "-":
            stdout = sys.stdout.buffer
            export_scenario(session, name, stdout, progress=progress)
            stdout.flush()
            return
        summary = export_scenario(session, name, file, progress=progress)
    console().print(
        f"exported {summary.name!r}: {summary.entities} entities, {summary.bytes} bytes to {summary.path}",
        highlight=False,
        markup=False,
    )


@app.command("import")
def import_(
    file: str = typer.Argument(..., help="Scenario document to read; '-' reads standard input."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a scenario of the same name."),
    new_name: str | None = typer.Option(None, "--as", help="Import under this name instead of the document's."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Import a scenario from a versioned JSON document; nothing is written if it is invalid."""
    source: Any = sys.stdin.buffer if file == "-" else Path(file)
    # A collision with another writer runs the import again, reading the
    # file anew; standard input can be read only once.
    summary = store_write(
        database_url,
        lambda session: import_scenario(session, source, overwrite=overwrite, name=new_name, progress=progress),
        what=f"the import of {'standard input' if file == '-' else file}",
        attempts=1 if file == "-" else DEFAULT_ATTEMPTS,
    )
    console().print(
        f"imported {summary.name!r} ({summary.id}): {sum(summary.counts.values())} entities",
        highlight=False,
        markup=False,
    )
    for warning in summary.warnings:
        console().print(f"warning: {warning}", highlight=False, markup=False)


@app.command()
def delete(
    name: str = typer.Argument(..., help="Scenario name or id."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Delete a scenario and every entity no other scenario holds."""
    with store_session(database_url) as session:
        info = ScenarioRepository(session).scenario_summary(name)
    if not yes:
        # Asked with the store let go: a DuckDB file stays free for others (an MCP server) meanwhile.
        total = sum(info.entity_counts.values())
        typer.confirm(f"Delete the scenario {info.name!r} and its {total} entities?", abort=True)
    deleted = store_write(
        database_url,
        lambda session: ScenarioRepository(session).delete(info.id),
        what=f"the deletion of scenario {info.name!r}",
    )
    if not deleted:
        raise ScenarioNotFoundError(f"the scenario {info.name!r} was deleted by another program meanwhile")
    console().print(f"deleted {info.name!r}", highlight=False, markup=False)


@app.command()
def restore(
    name: str = typer.Argument(..., help="Scenario name or id, as it was at --as-of."),
    as_of: str = typer.Option(
        ..., "--as-of", metavar="TIME", callback=parse_time, help=f"Restore it as it was then. {TIME_HELP}"
    ),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Save a scenario (deleted since, or changed) as it was at a past time, from the history;
    what it holds now is replaced, and kept in the history."""
    at: Any = as_of  # a datetime: parse_time converted it
    summary = store_write(
        database_url,
        lambda session: ScenarioRepository(session).restore(name, at),
        what=f"the restore of scenario {name!r}",
    )
    console().print(
        f"restored {summary.name!r} as of {when(at)}: {sum(summary.counts.values())} entities",
        highlight=False,
        markup=False,
    )


@app.command()
def tag(
    name: str = typer.Argument(..., help="Scenario name or id."),
    add: list[str] = typer.Option([], "--add", "-a", help="Tag to add (repeatable)."),
    remove: list[str] = typer.Option([], "--remove", "-r", help="Tag to remove (repeatable)."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Add or remove tags, then print the scenario's tags (only print them without options)."""

    def work(session: Session) -> tuple[ScenarioInfo, list[str]]:
        repo = ScenarioRepository(session)
        info = repo.scenario_summary(name)
        tags = info.tags
        if add:
            tags = repo.add_tags(info.id, add)
        if remove:
            tags = repo.remove_tags(info.id, remove)
        return info, tags

    info, tags = store_write(database_url, work, what=f"the tagging of scenario {name!r}")
    console().print(f"{info.name}: {', '.join(tags) if tags else '(no tags)'}", highlight=False, markup=False)
