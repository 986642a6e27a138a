"""Options shared by every command group."""

from __future__ import annotations

import typer

DatabaseUrl = typer.Option(
    None,
    "--database-url",
    metavar="URL",
    help="Database URL; default: $HEALTHSIM_DATABASE_URL, else ~/.healthsim/healthsim.duckdb.",
    show_default=False,
)
