"""Questions asked of the reference tables: area profiles, and scenarios joined to them.

A profile puts an area's PLACES health measures and its SVI vulnerability
side by side. The scenario join links a scenario's patients to their
county's SVI row; see :func:`patients_with_svi` for which patient fields it
uses and why.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from healthsim_models.errors import ReferenceDataError
from healthsim_models.population import (
    PLACES_MEASURES,
    PlacesCounty,
    PlacesTract,
    ReferenceDataset,
    SviCounty,
    SviTract,
    snake_case,
)
from healthsim_models.registry import entity_type
from healthsim_models.state import ScenarioEntity
from healthsim_state.store.repository import ScenarioRepository

_REGISTRY = ReferenceDataset.__table__
_PATIENT = entity_type("patient")

# The SVI columns a profile shows: population, the four theme percentiles and
# the overall one, and the count of flagged variables.
SVI_PROFILE_COLUMNS = (
    "e_totpop",
    "rpl_theme1",
    "rpl_theme2",
    "rpl_theme3",
    "rpl_theme4",
    "rpl_themes",
    "f_total",
)
_SVI_THEME_NAMES = {
    "rpl_theme1": "socioeconomic status",
    "rpl_theme2": "household characteristics",
    "rpl_theme3": "racial and ethnic minority status",
    "rpl_theme4": "housing type and transportation",
    "rpl_themes": "overall",
}


# The words that end a county's name in SVI ("Loving County", "Juneau City and
# Borough", "Richmond city") but not in PLACES ("Loving"). Longest first, so
# that "City and Borough" goes whole.
COUNTY_SUFFIXES = ("City and Borough", "Census Area", "Municipality", "Borough", "Parish", "County", "city")
_SUFFIX_PATTERN = r"\s+(" + "|".join(s.lower() for s in COUNTY_SUFFIXES) + r")$"


def bare_county_name(name: str) -> str:
    """A county's name without its type word, as PLACES writes it: ``Loving County`` -> ``Loving``.

    The word is matched in any case; blanks around the name are dropped.
    """
    return re.sub(_SUFFIX_PATTERN, "", name.strip(), flags=re.IGNORECASE)


def _tract_name(location: str | None, state: str | None) -> str | None:
    """A tract's name from SVI's LOCATION, without the state: ``Census Tract 201, Autauga County``.

    SVI 2020 separates the parts with commas, 2022 with semicolons.
    """
    if not location:
        return None
    parts = re.split(r"\s*[;,]\s*", location.strip())
    if len(parts) > 1 and state and parts[-1].lower() == state.strip().lower():
        parts = parts[:-1]
    return ", ".join(parts)


@dataclass(frozen=True)
class AreaProfile:
    """An area's health measures and vulnerability, with the releases they come from.

    ``county_name`` is the (tract's) county without its type word
    (:func:`bare_county_name`: ``Loving``, never ``Loving County``), the same
    whether PLACES or SVI supplied it. ``name`` is the area's own name: for a
    county its ``county_name``; for a tract the name SVI publishes (``Census
    Tract 201, Autauga County``), None when SVI has no row for the tract.
    ``places`` maps each PLACES measure id in lower case (``diabetes``) to its
    crude prevalence (and, for counties, ``<id>_adj`` to the age-adjusted
    one); ``svi`` maps :data:`SVI_PROFILE_COLUMNS` to their values. Either is
    None when its table has no row for the area (or is not loaded).
    """

    level: str
    fips: str
    name: str | None
    county_name: str | None
    state: str | None
    places: dict[str, Any] | None
    svi: dict[str, Any] | None
    releases: dict[str, str]

    def theme(self, column: str) -> str:
        """A readable name of an SVI percentile column (``rpl_theme1`` -> socioeconomic status)."""
        return _SVI_THEME_NAMES[column]


def _fips(value: str | int, digits: int, level: str) -> str:
    text = str(value).strip()
    if not text.isdigit() or len(text) > digits:
        raise ReferenceDataError(f"{value!r} is not a {level} FIPS code: expected {digits} digits")
    return text.zfill(digits)


def _releases(connection: sa.Connection, *names: str) -> dict[str, str]:
    rows = connection.execute(sa.select(_REGISTRY.c.dataset, _REGISTRY.c.release).where(_REGISTRY.c.dataset.in_(names)))
    return {dataset: release for dataset, release in rows}


def _profile(
    session: Session, level: str, fips: str, places: sa.Table, places_key: str, svi: sa.Table, adjusted: bool
) -> AreaProfile:
    connection = session.connection()
    kinds = (("crude", ""), ("adj", "_adj")) if adjusted else (("crude", ""),)
    measure_columns = [
        places.c[f"{snake_case(m)}_{kind}_prev"].label(f"{snake_case(m)}{suffix}")
        for m in PLACES_MEASURES
        for kind, suffix in kinds
    ]
    place_row = (
        connection.execute(
            sa.select(places.c.county_name, places.c.state_abbr, *measure_columns).where(places.c[places_key] == fips)
        )
        .mappings()
        .first()
    )
    svi_row = (
        connection.execute(
            sa.select(
                svi.c.county, svi.c.st_abbr, svi.c.state, svi.c.location, *(svi.c[c] for c in SVI_PROFILE_COLUMNS)
            ).where(svi.c.fips == fips)
        )
        .mappings()
        .first()
    )
    releases = _releases(connection, places.name, svi.name)
    if place_row is None and svi_row is None:
        loaded = ", ".join(f"{d} {r}" for d, r in releases.items()) or "neither is loaded"
        raise ReferenceDataError(
            f"no {level} {fips} in {places.fullname} or {svi.fullname} ({loaded}); "
            "load them with 'healthsim reference load'"
        )
    county_name = bare_county_name(place_row["county_name"] if place_row else svi_row["county"])
    if level == "county":
        name = county_name
    else:
        name = _tract_name(svi_row["location"], svi_row["state"]) if svi_row else None
    return AreaProfile(
        level=level,
        fips=fips,
        name=name,
        county_name=county_name,
        state=place_row["state_abbr"] if place_row else svi_row["st_abbr"],
        places={k: v for k, v in place_row.items() if k not in ("county_name", "state_abbr")} if place_row else None,
        svi={c: svi_row[c] for c in SVI_PROFILE_COLUMNS} if svi_row else None,
        releases=releases,
    )


def county_profile(session: Session, fips: str | int) -> AreaProfile:
    """PLACES county measures (crude and age-adjusted) and SVI county themes of one county.

    ``fips`` is the 5-digit county code; a number or a code that lost its
    leading zero (``1001``) is padded (``01001``).
    """
    code = _fips(fips, 5, "county")
    return _profile(session, "county", code, PlacesCounty.__table__, "county_fips", SviCounty.__table__, True)


def tract_profile(session: Session, fips: str | int) -> AreaProfile:
    """PLACES tract measures and SVI tract themes of one census tract (11-digit FIPS)."""
    code = _fips(fips, 11, "tract")
    return _profile(session, "tract", code, PlacesTract.__table__, "tract_fips", SviTract.__table__, False)


def patient_county_fips() -> sa.ColumnElement[str]:
    """The county FIPS a patient document carries at ``address.county_fips``, as 5-digit text.

    The canonical Person address (canonical-models.md section 3) has street,
    city, state, postal code and country, but no county, and no ZIP-to-county
    crosswalk is part of the store. Generators that place patients in a
    PopulationSim geography may add ``address.county_fips``; being outside
    the canonical fields, it is kept in the patient's ``extensions`` column,
    which this expression reads on DuckDB and PostgreSQL alike. A JSON number
    (``1001``) or a code that lost its leading zeros is padded (``01001``);
    anything but one to five digits counts as no code (None).
    """
    code = sa.func.trim(_address_field("county_fips"))
    is_code = sa.and_(sa.func.length(code).between(1, 5), sa.func.translate(code, "0123456789", "") == "")
    return sa.case((is_code, sa.func.lpad(code, 5, "0")), else_=None)


def _address_field(name: str) -> sa.ColumnElement[str]:
    return _PATIENT.model.__table__.c.extensions["address"][name].as_string()


def _county_key(name: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """SQL: a county name compared loosely, lower case without its type word (see bare_county_name)."""
    return sa.func.regexp_replace(sa.func.lower(sa.func.trim(name)), _SUFFIX_PATTERN, "")


def patient_county_by_name() -> sa.ColumnElement[str]:
    """The SVI county FIPS named by a patient's ``address.state`` and ``address.county``.

    ``state`` is the 2-letter code, ``county`` a name (``Franklin``, as the
    canonical example and Synthea write it, or ``Franklin County``). The
    name is matched in ``population.svi_county`` first as written (ignoring
    case), else without its type word on both sides (``bare_county_name``),
    but only where that names one county: Virginia's ``Richmond`` is both
    Richmond city and Richmond County, so it matches neither.
    """
    patients = _PATIENT.model.__table__
    svi = SviCounty.__table__.alias("svi_by_name")
    county = _address_field("county")
    same_state = sa.func.upper(svi.c.st_abbr) == sa.func.upper(sa.func.trim(patients.c.state))
    as_written = (
        sa.select(sa.func.min(svi.c.fips))
        .where(same_state, sa.func.lower(svi.c.county) == sa.func.lower(sa.func.trim(county)))
        .having(sa.func.count() == 1)
        .scalar_subquery()
    )
    bare = (
        sa.select(sa.func.min(svi.c.fips))
        .where(same_state, _county_key(svi.c.county) == _county_key(county))
        .having(sa.func.count() == 1)
        .scalar_subquery()
    )
    return sa.func.coalesce(as_written, bare)


def patients_with_svi(session: Session, scenario: str | uuid.UUID) -> list[dict[str, Any]]:
    """Each patient of ``scenario`` with its county's SVI percentiles, in saved order.

    One query: the scenario's patients, left-joined to ``population.svi_county``
    on the patient's county: :func:`patient_county_fips` when the document
    has one, else :func:`patient_county_by_name`. ``county_fips`` is the code
    the join used, ``county_from`` which field gave it (``county_fips``,
    ``county`` or None), ``county_name`` the SVI county's bare name. A patient
    with neither field, whose name matches no single county, or whose code
    the loaded file lacks, comes back with None values.
    """
    scenario_id = ScenarioRepository(session).scenario_summary(scenario).id
    patients = _PATIENT.model.__table__
    links = ScenarioEntity.__table__
    svi = SviCounty.__table__
    by_code = patient_county_fips()
    by_name = patient_county_by_name()
    county = sa.func.coalesce(by_code, by_name)
    query = (
        sa.select(
            patients.c.mrn,
            patients.c.given_name,
            patients.c.family_name,
            patients.c.state,
            county.label("county_fips"),
            sa.case(
                (by_code.is_not(None), sa.literal("county_fips")),
                (by_name.is_not(None), sa.literal("county")),
                else_=None,
            ).label("county_from"),
            sa.func.regexp_replace(sa.func.trim(svi.c.county), _SUFFIX_PATTERN, "", "i").label("county_name"),
            *(svi.c[c] for c in SVI_PROFILE_COLUMNS),
        )
        .select_from(patients)
        .join(
            links,
            sa.and_(
                links.c.entity_id == patients.c.id,
                links.c.scenario_id == scenario_id,
                links.c.entity_type == _PATIENT.name,
            ),
        )
        .outerjoin(svi, svi.c.fips == county)
        .order_by(links.c.position)
    )
    return [dict(row) for row in session.connection().execute(query).mappings()]
