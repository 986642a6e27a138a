"""People and places: location, care_site, provider, person and death.

A person is a patient, or a member or trial subject who is no patient of an
exported scenario. A member is the patient of an exported scenario with the
same SSN and birth date; a subject is the patient its ``patient_ref``
names, else one with the same SSN and birth date. The temporary table
``hs_person`` gives every patient, member and subject of the export its
person's source key.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from healthsim_state.analytics.omop import concepts as c
from healthsim_state.analytics.omop.ids import join_id, key
from healthsim_state.analytics.omop.load import Target
from healthsim_state.analytics.omop.scope import SCOPE, in_scope, temp_table, text

PERSONS = "hs_person"
_TABLES = {"patient": "patients", "member": "members", "subject": "subjects"}


def create_person_map(session: Session) -> None:
    """Fill ``hs_person`` (entity_id, entity_type, person_key, pick)."""
    patients = f"SELECT p.* FROM patients p WHERE {in_scope('p', 'patient')}"
    by_ssn = (
        "SELECT ssn, birth_date, min('patient:' || CAST(id AS varchar)) AS person_key "
        f"FROM ({patients}) q WHERE ssn IS NOT NULL GROUP BY ssn, birth_date"
    )
    scoped_patients = f"(SELECT entity_id FROM {SCOPE} WHERE entity_type = 'patient')"
    temp_table(
        session,
        PERSONS,
        f"SELECT id AS entity_id, 'patient' AS entity_type, 'patient:' || {key('id')} AS person_key, 0 AS pick "
        f"FROM ({patients}) p "
        "UNION ALL "
        f"SELECT m.id, 'member', coalesce(x.person_key, 'member:' || {key('m.id')}), 1 "
        f"FROM members m LEFT JOIN ({by_ssn}) x ON x.ssn = m.ssn AND x.birth_date = m.birth_date "
        f"WHERE {in_scope('m', 'member')} "
        "UNION ALL "
        "SELECT s.id, 'subject', coalesce("
        f"CASE WHEN s.patient_uuid IN {scoped_patients} THEN 'patient:' || {key('s.patient_uuid')} END, "
        f"x.person_key, 'subject:' || {key('s.id')}), 2 "
        f"FROM subjects s LEFT JOIN ({by_ssn}) x ON x.ssn = s.ssn AND x.birth_date = s.birth_date "
        f"WHERE {in_scope('s', 'subject')}",
    )


def address_key(alias: str, second_line: bool = False) -> str:
    """The source key of a location: the address, or NULL without one."""
    parts = [f"{alias}.street_address"] + ([f"{alias}.street_address_2"] if second_line else ["NULL"])
    parts += [f"{alias}.city", f"{alias}.state", f"{alias}.postal_code"]
    joined = " || '|' || ".join(f"coalesce({p}, '')" for p in parts)
    return f"CASE WHEN coalesce({', '.join(parts)}) IS NOT NULL THEN {joined} END"


def location() -> Target:
    columns = (
        "address_1",
        "address_2",
        "city",
        "state",
        "zip",
        "county",
        "location_source_value",
        "country_concept_id",
        "country_source_value",
        "latitude",
        "longitude",
    )
    selects = []
    for table, entity, pick, persons in (
        ("organizations", "organization", 0, False),
        ("practitioners", "practitioner", 1, False),
        ("patients", "patient", 2, True),
        ("members", "member", 3, True),
        ("subjects", "subject", 4, True),
    ):
        place = "NULL, NULL" if persons else "a.latitude, a.longitude"
        country = "a.country" if persons else "'US'"
        selects.append(
            f"SELECT {address_key('a', persons)} AS _key, a.id AS _entity, {pick} AS _pick, "
            f"{text('a.street_address', 50)} AS address_1, "
            f"{text('a.street_address_2' if persons else 'NULL', 50)} AS address_2, "
            f"{text('a.city', 50)} AS city, {text('a.state', 2)} AS state, {text('a.postal_code', 9)} AS zip, "
            f"CAST(NULL AS varchar) AS county, {text(address_key('a', persons), 50)} AS location_source_value, "
            f"CAST(NULL AS integer) AS country_concept_id, {text(country, 80)} AS country_source_value, {place} "
            f"FROM {table} a WHERE {in_scope('a', entity)} AND {address_key('a', persons)} IS NOT NULL"
        )
    return Target("location", "location_id", columns, " UNION ALL ".join(selects))


def care_site(schema: str) -> Target:
    """One care site per organization."""
    columns = (
        "care_site_name",
        "place_of_service_concept_id",
        "location_id",
        "care_site_source_value",
        "place_of_service_source_value",
    )
    select = (
        f"SELECT {key('o.id')} AS _key, o.id AS _entity, 0 AS _pick, {text('o.name', 255)}, "
        f"CAST(NULL AS integer), l.id, {text('o.organization_id', 50)}, CAST(NULL AS varchar) "
        f"FROM organizations o {join_id(schema, 'location', 'l', address_key('o'))} "
        f"WHERE {in_scope('o', 'organization')}"
    )
    return Target("care_site", "care_site_id", columns, select)


def provider(schema: str) -> Target:
    """One provider per practitioner."""
    columns = (
        "provider_name",
        "npi",
        "dea",
        "specialty_concept_id",
        "care_site_id",
        "year_of_birth",
        "gender_concept_id",
        "provider_source_value",
        "specialty_source_value",
        "specialty_source_concept_id",
        "gender_source_value",
        "gender_source_concept_id",
    )
    select = (
        f"SELECT {key('p.id')} AS _key, p.id AS _entity, 0 AS _pick, {text('p.name', 255)}, "
        f"{text('p.npi', 20)}, CAST(NULL AS varchar), CAST(NULL AS integer), cs.id, CAST(NULL AS integer), "
        f"CASE WHEN p.gender IS NULL THEN NULL ELSE {c.gender_sql('p.gender')} END, "
        f"{text('p.practitioner_id', 50)}, {text('p.specialty', 50)}, CAST(NULL AS integer), "
        f"{text('p.gender', 50)}, CAST(NULL AS integer) "
        f"FROM practitioners p {join_id(schema, 'care_site', 'cs', key('p.organization_uuid'))} "
        f"WHERE {in_scope('p', 'practitioner')}"
    )
    return Target("provider", "provider_id", columns, select)


def person(schema: str) -> Target:
    columns = (
        "gender_concept_id",
        "year_of_birth",
        "month_of_birth",
        "day_of_birth",
        "birth_datetime",
        "race_concept_id",
        "ethnicity_concept_id",
        "location_id",
        "provider_id",
        "care_site_id",
        "person_source_value",
        "gender_source_value",
        "gender_source_concept_id",
        "race_source_value",
        "race_source_concept_id",
        "ethnicity_source_value",
        "ethnicity_source_concept_id",
    )
    selects = []
    for entity, table in _TABLES.items():
        race = "NULL" if entity == "member" else "a.race"
        ethnicity = "NULL" if entity == "member" else "a.ethnicity"
        source = {"patient": "a.mrn", "member": "a.member_id", "subject": "a.usubjid"}[entity]
        selects.append(
            f"SELECT h.person_key AS _key, a.id AS _entity, h.pick AS _pick, {c.gender_sql('a.gender')}, "
            "CAST(extract(year FROM a.birth_date) AS integer), CAST(extract(month FROM a.birth_date) AS integer), "
            "CAST(extract(day FROM a.birth_date) AS integer), CAST(a.birth_date AS TIMESTAMP), "
            f"{c.race_sql(race)}, {c.ethnicity_sql(ethnicity)}, l.id, CAST(NULL AS integer), "
            f"CAST(NULL AS integer), {text(source, 50)}, {text('a.gender', 50)}, 0, "
            f"{text(race, 50)}, 0, {text(ethnicity, 50)}, 0 "
            f"FROM {table} a JOIN {PERSONS} h ON h.entity_id = a.id "
            f"{join_id(schema, 'location', 'l', address_key('a', True))}"
        )
    return Target("person", "person_id", columns, " UNION ALL ".join(selects))


def death(schema: str) -> Target:
    """A death per person whose patient (else member, else subject) record has a death date."""
    columns = ("death_date", "death_datetime", "death_type_concept_id", "cause_concept_id", "cause_source_value")
    selects = [
        f"SELECT h.person_key AS _key, a.id AS _entity, h.pick AS _pick, a.death_date, "
        f"CAST(a.death_date AS TIMESTAMP), {c.EHR}, CAST(NULL AS integer), CAST(NULL AS varchar) "
        f"FROM {table} a JOIN {PERSONS} h ON h.entity_id = a.id WHERE a.death_date IS NOT NULL"
        for table in _TABLES.values()
    ]
    return Target("death", "person_id", columns, " UNION ALL ".join(selects), id_table="person")
