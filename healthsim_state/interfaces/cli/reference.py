"""``healthsim reference``: load PopulationSim reference files (PLACES, SVI, ADI) and show what is loaded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console

from healthsim_state.interfaces.cli.options import DatabaseUrl
from healthsim_state.interfaces.cli.terminal import progress
from healthsim_state.reference import DATASETS, load_reference, reference_status

app = typer.Typer(
    help="PopulationSim reference data (CDC PLACES, CDC/ATSDR SVI, Neighborhood Atlas ADI): load, status.",
    no_args_is_help=True,
)
_out = Console()


@app.command()
def load(
    dataset: str = typer.Argument(..., help=f"One of: {', '.join(DATASETS)}."),
    file: Path = typer.Argument(..., help="The CSV file as published (PLACES GIS-friendly, SVI, ADI)."),
    replace: bool = typer.Option(False, "--replace", help="Replace the rows a previous load left, in one transaction."),
    release: str | None = typer.Option(
        None,
        "--release",
        show_default=False,
        help="The release, when its header does not say and the file name holds no release year.",
    ),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Load FILE into the table of DATASET; refused, with nothing changed, if the file is not as published."""
    with progress(f"loading {dataset}"):
        result = load_reference(dataset, file, replace=replace, release=release, database_url=database_url)
    _out.print(
        f"loaded {result.dataset} release {result.release} from {result.source_file}: "
        f"{result.row_count} rows (sha256 {result.sha256})",
        soft_wrap=True,
        highlight=False,
    )


@app.command()
def status(database_url: str | None = DatabaseUrl) -> None:
    """Show each reference dataset: the release, rows, file, checksum and load time, or 'not loaded'."""
    for st in reference_status(database_url=database_url):
        loaded = st.loaded
        if loaded is None:
            line = f"not loaded (accepts release {', '.join(st.accepted_releases)})"
        else:
            when = loaded.loaded_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            line = (
                f"release {loaded.release}, {loaded.row_count} rows from {loaded.source_file}, "
                f"sha256 {loaded.sha256}, loaded {when}"
            )
        _out.print(f"{st.dataset:<15} {line}", soft_wrap=True, highlight=False)
