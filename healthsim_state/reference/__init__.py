"""PopulationSim reference data: CDC PLACES, CDC/ATSDR SVI and ADI in the ``population`` schema.

``load_dataset(session, name, path)`` and ``dataset_status(session)`` work in
a session's transaction; ``load_reference`` and ``reference_status`` do the
same over a default session (``database_url=`` picks another database), as
``healthsim reference load`` and ``status`` do. ``county_profile``,
``tract_profile`` and ``patients_with_svi`` query the loaded tables.
``docs/reference-data.md`` describes the tables and accepted releases.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL

from healthsim_models.engine import get_engine, session_scope
from healthsim_state.reference.datasets import DATASETS, Dataset, Release, dataset
from healthsim_state.reference.loader import DatasetStatus, LoadResult, dataset_status, load_dataset
from healthsim_state.reference.profiles import (
    AreaProfile,
    bare_county_name,
    county_profile,
    patient_county_by_name,
    patient_county_fips,
    patients_with_svi,
    tract_profile,
)


def load_reference(
    name: str,
    path: str | Path,
    *,
    replace: bool = False,
    release: str | None = None,
    database_url: str | URL | None = None,
) -> LoadResult:
    """Load a reference file and commit; see :func:`load_dataset`."""
    with session_scope(get_engine(database_url)) as session:
        return load_dataset(session, name, path, replace=replace, release=release)


def reference_status(*, database_url: str | URL | None = None) -> list[DatasetStatus]:
    """What each reference table holds; see :func:`dataset_status`."""
    with session_scope(get_engine(database_url)) as session:
        return dataset_status(session)


__all__ = [
    "DATASETS",
    "AreaProfile",
    "Dataset",
    "DatasetStatus",
    "LoadResult",
    "Release",
    "bare_county_name",
    "county_profile",
    "dataset",
    "dataset_status",
    "load_dataset",
    "load_reference",
    "patient_county_by_name",
    "patient_county_fips",
    "patients_with_svi",
    "reference_status",
    "tract_profile",
]
