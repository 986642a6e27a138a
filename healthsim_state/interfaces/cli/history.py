"""``healthsim history``: retention of the versions writes replaced, and its settings."""

from __future__ import annotations

import datetime as dt
import json

import typer

from healthsim_models.errors import InvalidArgumentError
from healthsim_models.settings import DECLARED
from healthsim_state.interfaces.cli.options import DatabaseUrl
from healthsim_state.interfaces.cli.session import store_session, store_write
from healthsim_state.interfaces.cli.terminal import console
from healthsim_state.store import settings as store_settings
from healthsim_state.store.repository import ScenarioRepository

#: The settings of the history, declared in healthsim_models.settings.
HISTORY_SETTINGS = tuple(key for key in DECLARED if key.startswith("history."))

app = typer.Typer(help="Entity history: prune it, and its settings.", no_args_is_help=True)

#: What --as-of takes, for help texts.
TIME_HELP = "An ISO 8601 time, e.g. 2026-12-07T09:30:00+00:00 (no zone: UTC; a date alone: its midnight, UTC)."


def parse_time(value: str | None) -> dt.datetime | None:
    """An --as-of value as an aware datetime; a usage error when it is not a time."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a time; {TIME_HELP}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def when(value: dt.datetime | None) -> str:
    """A stored time as ISO 8601 in UTC ('' for None)."""
    if value is None:
        return ""
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()


@app.command()
def prune(
    older_than: int | None = typer.Option(
        None, "--older-than", min=0, metavar="DAYS", help="Delete versions replaced more than DAYS days ago."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Delete old versions: those replaced before --older-than DAYS, else before the store's
    history.keep_days (unset: keep all, nothing is deleted)."""
    span = None if older_than is None else dt.timedelta(days=older_than)
    deleted = store_write(
        database_url,
        lambda session: ScenarioRepository(session).prune_history(span),
        what="the pruning of the history",
    )
    if as_json:
        typer.echo(json.dumps(deleted, indent=2))
        return
    if not deleted:
        console().print("nothing to prune", highlight=False, markup=False)
    for table, count in deleted.items():
        console().print(f"{table}: {count} versions deleted", highlight=False, markup=False)


@app.command()
def setting(
    key: str = typer.Argument(..., help=f"The setting: {', '.join(HISTORY_SETTINGS)}."),
    value: str | None = typer.Argument(None, help="Its new value; without it, print the current one."),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Print or change a history setting of the store (shared by everyone using it):
    history.enabled (true/false) and history.keep_days (days, or 'all')."""
    if key not in HISTORY_SETTINGS:
        # Checked here, so that a mistyped name never opens (or creates) a store.
        raise InvalidArgumentError(f"unknown history setting {key!r}; they are {', '.join(HISTORY_SETTINGS)}")
    if value is None:
        with store_session(database_url) as session:
            current = store_settings.get_setting(session, key)
    else:
        current = store_write(
            database_url,
            lambda session: store_settings.change_setting(session, key, value),
            what=f"the change of {key}",
        )
    console().print(f"{key} = {current}", highlight=False, markup=False)
