"""``healthsim analytics``: the OMOP CDM 5.4 export, its check and summary, and the star schema.

One function per command; each command is registered on :data:`app` with its
own decorator, so another command is a function of its own beside them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from healthsim_state.analytics.omop import DEFAULT_SCHEMA, build_omop, omop_summary
from healthsim_state.interfaces.cli import analytics_check, analytics_star
from healthsim_state.interfaces.cli.options import DatabaseUrl
from healthsim_state.interfaces.cli.session import store_session, store_write
from healthsim_state.interfaces.cli.terminal import console, progress

app = typer.Typer(
    help="Analytics: the OMOP CDM 5.4 export (omop), its data-quality check and summary, and the star schema (star).",
    no_args_is_help=True,
)

Schema = typer.Option(DEFAULT_SCHEMA, "--schema", metavar="NAME", help="The OMOP schema in the store.")
AsJson = typer.Option(False, "--json", help="Print the result as JSON.")


@app.command()
def omop(
    scenarios: list[str] = typer.Argument(
        None, help="Scenarios to export (names or ids); default: all.", show_default=False
    ),
    schema: str = Schema,
    vocabulary: Path | None = typer.Option(
        None,
        "--vocabulary",
        metavar="DIR",
        show_default=False,
        help="An Athena vocabulary folder (CONCEPT.csv, CONCEPT_RELATIONSHIP.csv, ...) to map codes with.",
    ),
    as_json: bool = AsJson,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Build the OMOP CDM 5.4 tables of SCENARIOS into the schema, replacing what they contributed
    before; ids stay the same across builds. Prints rows and unmapped rows per table."""
    with progress("building the OMOP export"):
        summary = store_write(
            database_url,
            lambda session: build_omop(session, scenarios or None, schema=schema, vocabulary=vocabulary),
            what="the OMOP export",
        )
    report = summary.as_dict()
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    out = console()
    named = ", ".join(report["scenarios"]) or "no scenarios"
    mapped = f"vocabulary {report['vocabulary']}" if report["vocabulary"] else "no vocabulary: concept ids 0"
    out.print(Text(f"OMOP CDM 5.4 export into schema {report['schema']!r} of {named} ({mapped})"))
    table = Table("table", "rows", "unmapped")
    for name, rows in report["rows"].items():
        unmapped = report["unmapped"].get(name)
        table.add_row(name, str(rows), "" if unmapped is None else str(unmapped))
    out.print(table)


@app.command()
def summary(
    schema: str = Schema,
    top: int = typer.Option(10, "--top", min=1, max=100, help="How many conditions and drugs to list."),
    as_json: bool = AsJson,
    database_url: str | None = DatabaseUrl,
) -> None:
    """Per exported scenario: persons, visits per visit concept, the most frequent conditions and drugs."""
    with store_session(database_url) as session:
        report = omop_summary(session, schema, top=top)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    out = console()
    if not report["scenarios"]:
        out.print(Text(f"schema {report['schema']!r} holds no exported scenario"))
    for scenario in report["scenarios"]:
        out.print(Text(f"{scenario['scenario']}: {scenario['persons']} persons"))
        visits = Table("visit concept", "name", "visits")
        for row in scenario["visits"]:
            visits.add_row(str(row["concept_id"]), Text(row["concept_name"]), str(row["visits"]))
        out.print(visits)
        for key, title in (("top_conditions", "condition"), ("top_drugs", "drug")):
            out.print(_top_table(title, scenario[key]))


def _top_table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(f"{title} concept", "name", "source value", "persons", "records")
    for row in rows:
        table.add_row(
            str(row["concept_id"]),
            Text(row["concept_name"]),
            Text(row["source_value"] or ""),
            str(row["persons"]),
            str(row["records"]),
        )
    return table


app.command()(analytics_check.check)
app.command(name="star")(analytics_star.star)
