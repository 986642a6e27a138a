"""``healthsim demo``: generate and save the deterministic demo scenario, then summarise it."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from healthsim_models.engine import get_engine, mask_url, resolve_database_url, session_scope
from healthsim_state import demo as demo_data
from healthsim_state.formats.common import counted
from healthsim_state.interfaces.cli.options import DatabaseUrl
from healthsim_state.interfaces.cli.terminal import progress
from healthsim_state.store.repository import ScenarioRepository


def demo(
    patients: int = typer.Option(
        demo_data.DEFAULT_PATIENTS, "--patients", "-n", min=1, max=demo_data.MAX_PATIENTS, help="Patients to generate."
    ),
    seed: int = typer.Option(demo_data.DEFAULT_SEED, "--seed", help="Random seed: the same seed gives the same data."),
    name: str = typer.Option(demo_data.DEFAULT_NAME, "--name", help="Scenario name."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a scenario of that name even if the demo did not make it."
    ),
    batch: int | None = typer.Option(
        None,
        "--batch",
        min=1,
        help=f"Generate and stage this many patients at a time, then publish the scenario whole (memory "
        f"stays bounded at any size); the default above {demo_data.AUTO_BATCH_ABOVE:,} patients is "
        f"{demo_data.DEFAULT_BATCH:,}.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the scenario's name, id, entities per type and database as JSON."
    ),
    database_url: str | None = DatabaseUrl,
) -> None:
    """Generate a demo scenario spanning PatientSim, MemberSim, RxMemberSim and TrialSim, save it, and
    print how many entities of each type it holds.

    Running it again with the same name replaces the earlier demo scenario;
    a scenario of that name that the demo did not make needs --overwrite.
    With --batch (automatic for large sizes) the patients are generated and
    staged in batches and the scenario appears whole at the end; an
    interrupted run leaves nothing visible.
    """
    url = resolve_database_url(database_url)
    engine = get_engine(url)
    total = sum(demo_data.entity_counts(patients, seed).values())
    if batch is None and patients > demo_data.AUTO_BATCH_ABOVE:
        batch = demo_data.DEFAULT_BATCH
    with (
        progress(f"saving demo scenario {name!r}", total, rate="entities") as advance,
        session_scope(engine) as session,
    ):
        summary = demo_data.save_demo(
            ScenarioRepository(session),
            name=name,
            patients=patients,
            seed=seed,
            overwrite=overwrite,
            wrap=lambda stream: counted(stream, advance),
            batch=batch,
        )
    if as_json:
        report = {
            "scenario": summary.name,
            "scenario_id": str(summary.id),
            "entities": summary.counts,
            "total": sum(summary.counts.values()),
            "database": mask_url(url),
        }
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    out = Console()
    table = Table("type", "count", title=Text(f"scenario: {summary.name}"), title_justify="left")
    for type_name, count in summary.counts.items():
        table.add_row(type_name, str(count))
    table.add_row("total", str(sum(summary.counts.values())), style="bold")
    out.print(table)
    out.print(f"database: {mask_url(url)}", markup=False, highlight=False, soft_wrap=True)
