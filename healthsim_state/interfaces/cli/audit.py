"""``healthsim audit``: the store's audit trail, newest first; turn the auditing of reads on or off."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from enum import Enum
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from healthsim_models.settings import AUDIT_READS
from healthsim_state.interfaces.cli.options import DatabaseUrl
from healthsim_state.interfaces.cli.session import store_session, store_write
from healthsim_state.interfaces.cli.terminal import console
from healthsim_state.store.audit import AuditRecord, audit_events
from healthsim_state.store.query import json_value
from healthsim_state.store.settings import change_setting


class Switch(str, Enum):
    on = "on"
    off = "off"


def _since(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date or time; give one as 2026-12-07 or 2026-12-07T09:30:00+00:00 (UTC when no offset)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def audit(
    since: str | None = typer.Option(
        None, "--since", metavar="TIME", help="Only events at or after TIME (ISO 8601; UTC when no offset)."
    ),
    scenario: str | None = typer.Option(None, "--scenario", metavar="NAME", help="Only events about this scenario."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many events."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array instead of a table."),
    reads: Switch | None = typer.Option(
        None, "--reads", help=f"Turn the auditing of reads ({AUDIT_READS}) on or off, and print nothing else."
    ),
    database_url: str | None = DatabaseUrl,
) -> None:
    """List the audit trail's events, newest first: what changed the store, when, by whom, how it ended."""
    if reads is not None:
        value = reads.value
        store_write(
            database_url,
            lambda session: change_setting(session, AUDIT_READS, value),
            what=f"the change of {AUDIT_READS}",
        )
        console().print(f"{AUDIT_READS}: {value}", highlight=False, markup=False)
        return
    when = _since(since)
    limit = min(limit, 2**63 - 1)  # beyond what LIMIT takes no store has events
    with store_session(database_url) as session:
        events = audit_events(session, since=when, scenario=scenario, limit=limit)
    if as_json:
        typer.echo(json.dumps([event_json(e) for e in events], ensure_ascii=False, indent=2))
        return
    if not events:
        console().print("no audit events" + (" match" if since or scenario else ""), markup=False)
        return
    table = Table(caption="times in UTC")
    users = any(e.database_user for e in events)  # PostgreSQL only
    columns = ["time", "operation", "scenario", "entities", "actor (via)", *(["db user"] if users else []), "outcome"]
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in ("time", "operation"))
    for e in events:
        outcome = e.outcome if e.error is None else f"{e.outcome}: {e.error.splitlines()[0]}"
        table.add_row(
            e.occurred_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            e.operation,
            Text(e.scenario_name or (str(e.scenario_id) if e.scenario_id else "")),
            str(sum(e.counts.values())) if e.counts else "",
            Text(f"{e.actor} ({e.interface})"),
            *([Text(e.database_user or "")] if users else []),
            Text(outcome),
        )
    console().print(table)


def event_json(event: AuditRecord) -> dict[str, Any]:
    """One event as JSON values (ids and times as text)."""
    return json_value(asdict(event))
