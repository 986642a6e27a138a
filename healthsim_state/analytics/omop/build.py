"""``build_omop``: the OMOP CDM 5.4 export of some or all scenarios, in the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from healthsim_state.analytics.omop import concepts as c
from healthsim_state.analytics.omop import costs, eras, events, person, visits
from healthsim_state.analytics.omop.load import Target, drop_staged, write
from healthsim_state.analytics.omop.schema import (
    DEFAULT_SCHEMA,
    ROW_SCENARIOS,
    add_foreign_keys,
    create_schema,
    drop_foreign_keys,
    schema_name,
)
from healthsim_state.analytics.omop.scope import SCENARIOS, SCOPE, create_scope, resolve_scenarios
from healthsim_state.analytics.omop.vocabulary import (
    check_folder,
    create_maps,
    stage_vocabulary,
    write_vocabulary,
)
from healthsim_state.analytics.omop.vocabulary import drop_staged as drop_vocabulary
from healthsim_state.store.audit import Recording, audited_call

#: The concept column whose 0 makes a row "unmapped", per table.
MAPPED_BY = {
    "person": "gender_concept_id",
    "visit_occurrence": "visit_concept_id",
    "visit_detail": "visit_detail_concept_id",
    "condition_occurrence": "condition_concept_id",
    "procedure_occurrence": "procedure_concept_id",
    "drug_exposure": "drug_concept_id",
    "device_exposure": "device_concept_id",
    "measurement": "measurement_concept_id",
    "observation": "observation_concept_id",
    "specimen": "specimen_concept_id",
}


@dataclass
class OmopSummary:
    """What a build wrote: rows per OMOP table (for the exported scenarios; the
    derived tables for every person), and how many of them have concept 0."""

    schema: str
    scenarios: list[str]
    vocabulary: str | None
    rows: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "scenarios": self.scenarios,
            "vocabulary": self.vocabulary,
            "rows": dict(self.rows),
            "unmapped": dict(self.unmapped),
        }


def _recorded(event: Recording, summary: OmopSummary, arguments: dict[str, Any]) -> None:
    """The audit event of a build: rows per OMOP table, the schema and the scenarios."""
    event.counts = dict(summary.rows)
    event.details.update(schema=summary.schema, scenarios=summary.scenarios)
    if len(summary.scenarios) == 1:
        event.scenario_name = summary.scenarios[0]


@audited_call("omop_build", describe=_recorded)
def build_omop(
    session: Session,
    scenarios: list[str] | None = None,
    *,
    schema: str = DEFAULT_SCHEMA,
    vocabulary: str | Path | None = None,
) -> OmopSummary:
    """Export ``scenarios`` (names or ids; None: all) into the OMOP schema ``schema``,
    replacing what they contributed before; ``vocabulary``: an Athena-style folder to
    map codes with. Runs in the caller's transaction and does not commit; it is
    one audited operation (``omop_build``), refused ones included.

    Raises :class:`~healthsim_models.errors.ScenarioNotFoundError`,
    :class:`~healthsim_models.errors.VocabularyError` or
    :class:`~healthsim_models.errors.InvalidArgumentError` (a bad schema name)
    before anything is written.
    """
    schema = schema_name(schema)
    folder = check_folder(Path(vocabulary)) if vocabulary is not None else None
    chosen = resolve_scenarios(session, scenarios)
    create_schema(session, schema, foreign_keys=False)
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        drop_foreign_keys(session, schema)
    summary = OmopSummary(schema, sorted(chosen.values()), str(folder) if folder else None)
    version = stage_vocabulary(session, folder)
    create_scope(session, list(chosen))
    if scenarios is None:
        # A build of all mirrors the store: what deleted scenarios contributed goes too.
        session.connection().exec_driver_sql(
            f"INSERT INTO {SCENARIOS} (scenario_id) SELECT DISTINCT scenario_id FROM {schema}.{ROW_SCENARIOS} "
            "WHERE scenario_id NOT IN (SELECT id FROM scenarios)"
        )
    person.create_person_map(session)
    written: list[Target] = []

    def run(target: Target) -> None:
        summary.rows[target.table] = write(session, schema, target)
        column = MAPPED_BY.get(target.table)
        if column is not None:
            summary.unmapped[target.table] = (
                session.connection()
                .exec_driver_sql(f"SELECT count(DISTINCT _key) FROM {target.staged} WHERE {column} = 0")
                .scalar()
                or 0
            )
        written.append(target)

    for target in (
        person.location(),
        person.care_site(schema),
        person.provider(schema),
        person.person(schema),
        person.death(schema),
        visits.visit_occurrence(schema),
        visits.visit_detail(schema),
        costs.payer_plan_period(schema),
    ):
        run(target)
    events.create_events(session)
    create_maps(session, events.EVENTS)
    events.route_events(session, schema)
    for make in events.ROUTED_TARGETS:
        run(make())
    run(events.note(schema))
    run(events.specimen(schema))
    run(costs.cost(schema))
    referenced = (
        f"SELECT source_concept_id FROM {events.ROUTED} UNION SELECT concept_id FROM {events.ROUTED} "
        f"UNION SELECT unit_concept_id FROM {events.ROUTED} WHERE unit_concept_id IS NOT NULL"
    )
    # Before the eras: drug eras roll up to the ingredients written with the concepts.
    write_vocabulary(session, schema, referenced, ("Visit", "Drug"))
    summary.rows["observation_period"] = eras.observation_period(session, schema)
    summary.rows["condition_era"] = eras.condition_era(session, schema)
    summary.rows["drug_era"] = eras.drug_era(session, schema)
    _cdm_source(session, schema, version)
    summary.rows["cdm_source"] = 1
    if postgres:
        add_foreign_keys(session, schema)
    drop_staged(session, written)
    drop_vocabulary(session)
    connection = session.connection()
    for name in (events.ROUTED, events.EVENTS, person.PERSONS, SCOPE, SCENARIOS):
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    return summary


def _cdm_source(session: Session, schema: str, version: str | None) -> None:
    """The one cdm_source row: the store, the scenarios the schema holds, the vocabulary's version."""
    connection = session.connection()
    previous = connection.exec_driver_sql(f"SELECT max(vocabulary_version) FROM {schema}.cdm_source").scalar()
    version = (version or previous or "none")[:20].replace("'", "''")
    connection.exec_driver_sql(f"DELETE FROM {schema}.cdm_source")
    names = (
        f"SELECT DISTINCT s.name FROM scenarios s JOIN {schema}.{ROW_SCENARIOS} r ON r.scenario_id = s.id "
        "WHERE r.omop_table = 'person' ORDER BY s.name"
    )
    listed = ", ".join(name for (name,) in connection.exec_driver_sql(names).all()).replace("'", "''")
    connection.exec_driver_sql(
        f"INSERT INTO {schema}.cdm_source (cdm_source_name, cdm_source_abbreviation, cdm_holder, "
        "source_description, source_documentation_reference, cdm_etl_reference, source_release_date, "
        "cdm_release_date, cdm_version, cdm_version_concept_id, vocabulary_version) VALUES "
        "('HealthSim Store', 'HealthSim', 'HealthSim', "
        f"'Synthetic data of the HealthSim scenarios: {listed}', NULL, 'docs/analytics.md', CURRENT_DATE, "
        f"CURRENT_DATE, 'v5.4', {c.CDM_5_4}, '{version}')"
    )
