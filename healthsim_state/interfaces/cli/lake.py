"""``healthsim lake export``: the store's scenarios as Parquet or Delta datasets for Spark, Trino and DuckDB."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from healthsim_models.errors import LakeError
from healthsim_state.interfaces.cli.options import DatabaseUrl
from healthsim_state.interfaces.cli.session import store_session
from healthsim_state.interfaces.cli.terminal import progress
from healthsim_state.lake.layout import DERIVED, FORMATS

if TYPE_CHECKING:
    from healthsim_state.lake.export import LakeSummary

app = typer.Typer(help="The store as a data lake (docs/scale.md).", no_args_is_help=True)


def _options(pairs: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise LakeError(f"--storage-option {pair!r}: give KEY=VALUE (AWS_REGION=eu-west-1, say)")
        options[key.strip()] = value
    return options


def _includes(texts: list[str]) -> list[str]:
    return [part.strip() for text in texts for part in text.split(",") if part.strip()]


@app.command("export")
def export(
    target: str = typer.Argument(
        ..., help="A directory (created when missing) or an object-store URI: s3://, gs://, abfss://."
    ),
    scenarios: list[str] | None = typer.Option(
        None, "--scenario", "-s", help="A scenario to export, by name or id (repeat; default: every scenario)."
    ),
    format: str = typer.Option("parquet", "--format", help=f"The table format: {' or '.join(FORMATS)}."),
    include: list[str] = typer.Option(
        [], "--include", help=f"Derived tables to add, as built: {', '.join(DERIVED)} (comma-separated or repeated)."
    ),
    storage_option: list[str] = typer.Option(
        [], "--storage-option", metavar="KEY=VALUE", help="An object-store option (repeat), e.g. AWS_REGION=eu-west-1."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Write every canonical table of the scenarios to TARGET, one dataset per table partitioned
    by scenario, with a _manifest.json. Delta exports write only what changed since the last one."""
    # Imported here: pyarrow's dataset and compute modules would cost every command their load time.
    from healthsim_state.lake.export import check_request, export_lake
    from healthsim_state.lake.target import parse_target

    options = _options(storage_option)
    groups = check_request(format, _includes(include))
    parse_target(target, options).filesystem()  # a bad target or option is refused before the store is opened
    with progress(f"exporting to {target}"), store_session(database_url) as session:
        summary = export_lake(session, target, scenarios, format=format, include=groups, storage_options=options)
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
        return
    _print(summary)


def _print(summary: LakeSummary) -> None:
    delta = summary.format == "delta"
    columns = ["dataset", "rows", "written"] + (["removed", "version"] if delta else [])
    table = Table(*columns)
    for path, counts in summary.rows.items():
        cells = [path, str(sum(counts.values())), str(summary.written.get(path, 0))]
        if delta:
            version = summary.versions.get(path)
            cells += [str(summary.removed.get(path, 0)), "unchanged" if version is None else str(version)]
        table.add_row(*cells)
    out = Console()
    names = ", ".join(summary.scenarios) or "none (the store has no scenario)"
    out.print(f"{summary.format} lake at {summary.target}: {names}", markup=False, highlight=False)
    out.print(table)
