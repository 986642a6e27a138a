"""The reference datasets and the published file formats the store accepts, as data.

One :class:`Dataset` per table: the releases whose header it accepts (each
header written out as published), which columns are geographic codes and how
many digits they have, which are PLACES confidence intervals, and which
suppression markers may stand in place of a number. Column types are not
here: they are the table's (``healthsim_models.population``), so there is
one place that says what a column is.

Accepted releases:

- CDC PLACES, GIS-friendly format: the 2024 release (BRFSS 2022, 40 measures),
  census tract and county files.
- CDC/ATSDR SVI: the 2020 and 2022 editions, US census tract and US county
  CSV files (one header for both editions and both levels).
- Neighborhood Atlas ADI: the 2020, 2021, 2022 and 2023 block group files
  (v4.x, one header for all of them). The US files are written by R and
  start with an unnamed row-number column; it is accepted and not loaded.

Where several releases share one header the release comes from the caller,
else from a release year in the file name (``SVI_2022_US.csv``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from healthsim_models.errors import ReferenceDataError
from healthsim_models.population import (
    ADI_SUPPRESSION_MARKERS,
    PLACES_MEASURES,
    REFERENCE_TABLES,
    SVI_ADJUNCT,
    SVI_RANKED,
    SVI_SUPPRESSION_MARKER,
    SVI_THEMES,
    snake_case,
)


@dataclass(frozen=True)
class Release:
    """One published release: its name and its header, as published."""

    name: str
    headers: tuple[str, ...]

    @property
    def columns(self) -> frozenset[str]:
        """The header normalised to lower snake case."""
        return frozenset(snake_case(h) for h in self.headers)


@dataclass(frozen=True)
class Dataset:
    """A reference table and the file formats that fill it.

    ``codes`` maps each geographic code column to its digit count: the value
    is text, left-padded with zeros to that width (files written through a
    spreadsheet drop them). ``intervals`` are PLACES ``( low, high)`` texts,
    stored as ``<column>_low`` and ``<column>_high``. ``markers`` may replace
    a number in ``marker_columns`` (all numeric columns when empty); with
    ``companion_suffix`` the marker is kept in ``<column><suffix>``,
    otherwise the names of the columns that held it are listed in
    ``suppressed_columns``. With ``row_number_column`` a first column with no
    name (the row numbers R's ``write.csv`` puts first) is accepted and skipped.
    """

    name: str
    title: str
    releases: tuple[Release, ...]
    key: str
    codes: dict[str, int]
    intervals: frozenset[str] = frozenset()
    markers: tuple[str, ...] = ()
    marker_columns: frozenset[str] = frozenset()
    companion_suffix: str | None = None
    row_number_column: bool = False
    table: sa.Table = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", REFERENCE_TABLES[self.name])

    @property
    def release_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.releases)


def _places_headers(level: str) -> tuple[str, ...]:
    places = ("StateAbbr", "StateDesc", "CountyName", "CountyFIPS")
    if level == "tract":
        places += ("TractFIPS",)
    kinds = ("Crude",) if level == "tract" else ("Crude", "Adj")
    measures = tuple(
        f"{measure}_{kind}{suffix}" for measure in PLACES_MEASURES for kind in kinds for suffix in ("Prev", "95CI")
    )
    return (*places, "TotalPopulation", "TotalPop18plus", *measures, "Geolocation")


def _places_intervals(level: str) -> frozenset[str]:
    kinds = ("crude",) if level == "tract" else ("crude", "adj")
    return frozenset(f"{snake_case(m)}_{kind}95_ci" for m in PLACES_MEASURES for kind in kinds)


def _svi_headers() -> tuple[str, ...]:
    """The header of the 2020 and 2022 SVI CSV files (tract and county alike)."""
    headers = ["ST", "STATE", "ST_ABBR", "STCNTY", "COUNTY", "FIPS", "LOCATION", "AREA_SQMI"]
    for var in ("TOTPOP", "HU", "HH", *SVI_RANKED):
        headers += [f"E_{var}", f"M_{var}"]
    for var in SVI_RANKED:
        headers += [f"EP_{var}", f"MP_{var}"]
    for number, variables in SVI_THEMES.items():
        headers += [f"EPL_{var}" for var in variables] + [f"SPL_THEME{number}", f"RPL_THEME{number}"]
    headers += ["SPL_THEMES", "RPL_THEMES"]
    for number, variables in SVI_THEMES.items():
        headers += [f"F_{var}" for var in variables] + [f"F_THEME{number}"]
    headers += ["F_TOTAL", "E_DAYPOP"]
    for var in SVI_ADJUNCT:
        headers += [f"E_{var}", f"M_{var}"]
    for var in SVI_ADJUNCT:
        headers += [f"EP_{var}", f"MP_{var}"]
    return tuple(headers)


_SVI_RELEASES = (Release("2020", _svi_headers()), Release("2022", _svi_headers()))
_ADI_HEADERS = ("GISJOIN", "FIPS", "ADI_NATRANK", "ADI_STATERNK")

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="places_tract",
            title="CDC PLACES, census tract (GIS-friendly format)",
            releases=(Release("2024", _places_headers("tract")),),
            key="tract_fips",
            codes={"county_fips": 5, "tract_fips": 11},
            intervals=_places_intervals("tract"),
        ),
        Dataset(
            name="places_county",
            title="CDC PLACES, county (GIS-friendly format)",
            releases=(Release("2024", _places_headers("county")),),
            key="county_fips",
            codes={"county_fips": 5},
            intervals=_places_intervals("county"),
        ),
        Dataset(
            name="svi_tract",
            title="CDC/ATSDR Social Vulnerability Index, census tract",
            releases=_SVI_RELEASES,
            key="fips",
            codes={"st": 2, "stcnty": 5, "fips": 11},
            markers=(SVI_SUPPRESSION_MARKER,),
        ),
        Dataset(
            name="svi_county",
            title="CDC/ATSDR Social Vulnerability Index, county",
            releases=_SVI_RELEASES,
            key="fips",
            codes={"st": 2, "stcnty": 5, "fips": 5},
            markers=(SVI_SUPPRESSION_MARKER,),
        ),
        Dataset(
            name="adi_blockgroup",
            title="Neighborhood Atlas Area Deprivation Index, census block group",
            releases=tuple(Release(year, _ADI_HEADERS) for year in ("2020", "2021", "2022", "2023")),
            key="fips",
            codes={"fips": 12},
            markers=ADI_SUPPRESSION_MARKERS,
            marker_columns=frozenset({"adi_natrank", "adi_staternk"}),
            companion_suffix="_suppression",
            row_number_column=True,
        ),
    )
}


def dataset(name: str) -> Dataset:
    """The dataset called ``name``; an unknown name lists the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ReferenceDataError(f"unknown reference dataset {name!r}: use one of {', '.join(DATASETS)}") from None
