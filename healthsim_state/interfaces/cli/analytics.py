"""``healthsim analytics``: analytics built from the canonical tables."""

from __future__ import annotations

import typer

from healthsim_state.interfaces.cli import analytics_star

app = typer.Typer(help="Analytics built from the canonical tables: the star schema.", no_args_is_help=True)
app.command(name="star")(analytics_star.star)
