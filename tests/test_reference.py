"""PopulationSim reference data: loading PLACES, SVI and ADI files, their types, markers,
refusals, atomic reloads, status, the CLI, the profiles and the scenario join, on both backends."""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from healthsim_models import ReferenceDataError, get_engine, session_scope
from healthsim_models.engine import dispose_engines
from healthsim_models.population import REFERENCE_TABLES, snake_case
from healthsim_state import save_scenario
from healthsim_state.interfaces.cli import app, main
from healthsim_state.reference import (
    DATASETS,
    bare_county_name,
    county_profile,
    load_reference,
    patients_with_svi,
    reference_status,
    tract_profile,
)
from tests.conftest import BACKENDS, throwaway_postgresql_database

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "reference"
FILES = {
    "places_tract": "PLACES__Census_Tract_Data__GIS_Friendly_Format___2024_release.csv",
    "places_county": "PLACES__County_Data__GIS_Friendly_Format___2024_release.csv",
    "svi_tract": "SVI_2022_US.csv",
    "svi_county": "SVI_2022_US_county.csv",
    "adi_blockgroup": "US_2022_ADI_Census_Block_Group_v4_0_1.csv",
}
runner = CliRunner()


def _load_all(url: str) -> None:
    for name, file in FILES.items():
        load_reference(name, FIXTURES / file, database_url=url)


@pytest.fixture(scope="module", params=BACKENDS)
def loaded_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One database per backend with every fixture file loaded, shared by the tests that only read."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path_factory.mktemp('reference') / 'store.duckdb'}"
        _load_all(url)
        yield url
        dispose_engines()
        return
    with throwaway_postgresql_database() as url:
        _load_all(url)
        yield url


def _rows(url: str, sql: str) -> list[tuple]:
    with get_engine(url).connect() as connection:
        return [tuple(r) for r in connection.exec_driver_sql(sql)]


# --- declarations -----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("StateAbbr", "state_abbr"),
        ("CountyFIPS", "county_fips"),
        ("TotalPop18plus", "total_pop18plus"),
        ("COLON_SCREEN_CrudePrev", "colon_screen_crude_prev"),
        ("ACCESS2_Crude95CI", "access2_crude95_ci"),
        ("E_TOTPOP", "e_totpop"),
        ("RPL_THEME1", "rpl_theme1"),
        ("ADI_NATRANK", "adi_natrank"),
        (" GISJOIN ", "gisjoin"),
    ],
)
def test_headers_are_normalised_to_lower_snake_case(header: str, column: str) -> None:
    assert snake_case(header) == column


@pytest.mark.parametrize("name", DATASETS)
def test_every_release_header_fills_every_column_of_its_table(name: str) -> None:
    """The declaration and the table agree: no column left unfilled, no header without a column."""
    ds = DATASETS[name]
    for release in ds.releases:
        filled: set[str] = set()
        for column in release.columns:
            if column in ds.intervals:
                filled |= {f"{column}_low", f"{column}_high"}
            else:
                filled.add(column)
                if ds.companion_suffix and column in ds.marker_columns:
                    filled.add(column + ds.companion_suffix)
        if ds.markers and not ds.companion_suffix:
            filled.add("suppressed_columns")
        assert filled == set(REFERENCE_TABLES[name].columns.keys()), release.name
        assert ds.key in release.columns and set(ds.codes) <= release.columns


def test_the_fixtures_carry_the_published_headers() -> None:
    for name, file in FILES.items():
        with (FIXTURES / file).open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle))
        if DATASETS[name].row_number_column:  # as published: R's unnamed row-number column first
            assert header[0] == "", name
            header = header[1:]
        assert tuple(header) == DATASETS[name].releases[-1].headers, name


# --- loading, types, codes, markers -------------------------------------------


def test_each_dataset_loads_and_is_registered(loaded_url: str) -> None:
    expected_rows = {"places_tract": 3, "places_county": 3, "svi_tract": 4, "svi_county": 4, "adi_blockgroup": 7}
    statuses = {st.dataset: st for st in reference_status(database_url=loaded_url)}
    assert set(statuses) == set(FILES)
    for name, file in FILES.items():
        loaded = statuses[name].loaded
        assert loaded is not None, name
        assert loaded.row_count == expected_rows[name]
        assert loaded.release == ("2024" if name.startswith("places") else "2022")
        assert loaded.source_file == file
        assert loaded.sha256 == hashlib.sha256((FIXTURES / file).read_bytes()).hexdigest()
        assert loaded.loaded_at.tzinfo is not None
        count = _rows(loaded_url, f"SELECT count(*) FROM population.{name}")[0][0]
        assert count == expected_rows[name]


def test_codes_keep_or_regain_their_leading_zeros(loaded_url: str) -> None:
    assert _rows(loaded_url, "SELECT tract_fips, county_fips FROM population.places_tract ORDER BY 1")[0] == (
        "01001020100",
        "01001",
    )
    # The SVI and ADI fixtures hold codes whose zeros a spreadsheet dropped (1001, 1001020100).
    assert _rows(loaded_url, "SELECT st, stcnty, fips FROM population.svi_county ORDER BY fips")[0] == (
        "01",
        "01001",
        "01001",
    )
    assert _rows(loaded_url, "SELECT fips FROM population.svi_tract ORDER BY fips")[0] == ("01001020100",)
    assert _rows(loaded_url, "SELECT fips FROM population.adi_blockgroup ORDER BY fips")[:2] == [
        ("010010201001",),
        ("010010201002",),
    ]


def test_measures_are_typed_values(loaded_url: str) -> None:
    prev, low, high, pop = _rows(
        loaded_url,
        "SELECT diabetes_crude_prev, diabetes_crude95_ci_low, diabetes_crude95_ci_high, total_population "
        "FROM population.places_tract WHERE tract_fips = '01001020100'",
    )[0]
    assert isinstance(prev, Decimal) and isinstance(low, Decimal) and isinstance(high, Decimal)
    assert low < prev < high
    assert pop == 1775
    adj = _rows(
        loaded_url,
        "SELECT obesity_adj_prev, obesity_adj95_ci_low FROM population.places_county WHERE county_fips = '06037'",
    )[0]
    assert all(isinstance(v, Decimal) for v in adj)
    # An empty cell in the PLACES file is NULL (no marker).
    assert _rows(
        loaded_url,
        "SELECT teethlost_crude_prev, teethlost_crude95_ci_low FROM population.places_tract "
        "WHERE tract_fips = '48201311500'",
    )[0] == (None, None)
    total, theme, flag = _rows(
        loaded_url, "SELECT e_totpop, rpl_themes, f_total FROM population.svi_county WHERE fips = '48201'"
    )[0]
    assert (total, theme) == (4726177, 0.8921) and isinstance(flag, int)


def test_svi_minus_999_becomes_null_and_is_listed(loaded_url: str) -> None:
    row = _rows(
        loaded_url,
        "SELECT e_totpop, rpl_themes, rpl_theme1, f_pov150, m_hburd, rpl_theme2, suppressed_columns "
        "FROM population.svi_county WHERE fips = '48301'",
    )[0]
    assert row[:5] == (57, None, None, None, None)
    assert row[5] is not None
    assert row[6].split(",") == [
        "m_hburd",
        "ep_pov150",
        "epl_pov150",
        "spl_theme1",
        "rpl_theme1",
        "spl_themes",
        "rpl_themes",
        "f_pov150",
    ]
    assert _rows(loaded_url, "SELECT suppressed_columns FROM population.svi_county WHERE fips = '48201'") == [(None,)]
    listed, total, themes = _rows(
        loaded_url,
        "SELECT suppressed_columns, e_totpop, rpl_themes FROM population.svi_tract WHERE fips = '48201980000'",
    )[0]
    assert (total, themes) == (0, None)
    assert "ep_pov150" in listed.split(",") and "f_total" in listed.split(",")


def test_adi_markers_become_null_with_the_marker_kept(loaded_url: str) -> None:
    rows = _rows(
        loaded_url,
        "SELECT fips, adi_natrank, adi_natrank_suppression, adi_staternk, adi_staternk_suppression "
        "FROM population.adi_blockgroup ORDER BY fips",
    )
    by_fips = {r[0]: r[1:] for r in rows}
    assert by_fips["010010201001"] == (73, None, 7, None)
    assert by_fips["482013115003"] == (100, None, 10, None)
    markers = {r[2] for r in rows if r[2] is not None}
    assert markers == {"GQ", "PH", "GQ-PH", "QDI"}
    for natrank, natrank_marker, staternk, staternk_marker in by_fips.values():
        assert (natrank is None) == (natrank_marker is not None)
        assert (staternk is None) == (staternk_marker is not None)


# --- refusals and atomic reloads ----------------------------------------------


def test_a_missing_column_is_refused_by_name(store_url: str) -> None:
    with pytest.raises(ReferenceDataError, match=r"missing columns DIABETES_CrudePrev\b"):
        load_reference("places_tract", FIXTURES / "places_tract_missing_column.csv", database_url=store_url)
    assert reference_status(database_url=store_url)[0].loaded is None


def test_an_unexpected_column_is_refused_by_name(store_url: str) -> None:
    with pytest.raises(ReferenceDataError, match=r"release 2020 or 2022: unexpected columns EXTRA_SCORE \("):
        load_reference("svi_county", FIXTURES / "svi_county_unexpected_column.csv", database_url=store_url)


def test_a_file_of_another_dataset_is_refused(duckdb_url: str) -> None:
    with pytest.raises(
        ReferenceDataError,
        match="missing columns ST, STATE, ST_ABBR.*; "
        "unexpected columns \\(unnamed\\), GISJOIN, ADI_NATRANK, ADI_STATERNK ",
    ):
        load_reference("svi_county", FIXTURES / FILES["adi_blockgroup"], database_url=duckdb_url)


def test_adi_row_numbers_are_skipped_and_other_unnamed_columns_refused(tmp_path: Path, store_url: str) -> None:
    """The published ADI files (and the fixture) start with R's unnamed row-number column; a file
    without it loads as well; an unnamed column anywhere else, or in another dataset, is refused."""
    assert load_reference("adi_blockgroup", FIXTURES / FILES["adi_blockgroup"], database_url=store_url).row_count == 7
    bare = tmp_path / "US_2022_ADI.csv"
    bare.write_text("GISJOIN,FIPS,ADI_NATRANK,ADI_STATERNK\nG01,10010201001,5,1\n")
    assert load_reference("adi_blockgroup", bare, replace=True, database_url=store_url).row_count == 1
    assert _rows(store_url, "SELECT fips, adi_natrank FROM population.adi_blockgroup") == [("010010201001", 5)]
    trailing = tmp_path / "US_2023_ADI.csv"
    trailing.write_text('"GISJOIN","FIPS","ADI_NATRANK","ADI_STATERNK",""\n"G01","10010201001","5","1","1"\n')
    with pytest.raises(ReferenceDataError, match=r"release 2020, 2021, 2022 or 2023: unexpected columns \(unnamed\)"):
        load_reference("adi_blockgroup", trailing, replace=True, database_url=store_url)
    lines = (FIXTURES / FILES["svi_county"]).read_text(encoding="utf-8-sig").splitlines()
    indexed = tmp_path / "SVI_2022_US_county.csv"
    indexed.write_text("\n".join([f",{lines[0]}", *(f"{i},{line}" for i, line in enumerate(lines[1:], 1))]) + "\n")
    with pytest.raises(ReferenceDataError, match=r"release 2020 or 2022: unexpected columns \(unnamed\)"):
        load_reference("svi_county", indexed, database_url=store_url)


def test_a_bad_code_is_refused(store_url: str) -> None:
    with pytest.raises(ReferenceDataError, match=r"fips value '1001020100X' is not a code of at most 12 digits"):
        load_reference("adi_blockgroup", FIXTURES / "adi_bad_fips.csv", release="2022", database_url=store_url)
    assert _rows(store_url, "SELECT count(*) FROM population.adi_blockgroup") == [(0,)]


def test_repeated_columns_and_empty_files_are_refused(tmp_path: Path, duckdb_url: str) -> None:
    repeated = tmp_path / "US_2022_ADI.csv"
    repeated.write_text("GISJOIN,FIPS,FIPS,ADI_NATRANK,ADI_STATERNK\n")
    with pytest.raises(ReferenceDataError, match="columns fips appear more than once"):
        load_reference("adi_blockgroup", repeated, database_url=duckdb_url)
    header_only = tmp_path / "US_2022_ADI_empty.csv"
    header_only.write_text("GISJOIN,FIPS,ADI_NATRANK,ADI_STATERNK\n")
    with pytest.raises(ReferenceDataError, match="no data rows"):
        load_reference("adi_blockgroup", header_only, database_url=duckdb_url)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ReferenceDataError, match="the file is empty"):
        load_reference("adi_blockgroup", empty, database_url=duckdb_url)
    with pytest.raises(ReferenceDataError, match="no such file"):
        load_reference("adi_blockgroup", tmp_path / "absent.csv", database_url=duckdb_url)


def test_unknown_datasets_and_releases_are_refused(duckdb_url: str) -> None:
    with pytest.raises(ReferenceDataError, match="unknown reference dataset 'svi'.*places_tract, places_county"):
        load_reference("svi", FIXTURES / FILES["svi_county"], database_url=duckdb_url)
    with pytest.raises(ReferenceDataError, match="svi_county has no release '2018'; accepted releases: 2020, 2022"):
        load_reference("svi_county", FIXTURES / FILES["svi_county"], release="2018", database_url=duckdb_url)


def test_a_shared_header_needs_the_release_from_the_caller_or_the_file_name(tmp_path: Path, store_url: str) -> None:
    unnamed = tmp_path / "adi_blockgroups.csv"
    shutil.copy(FIXTURES / FILES["adi_blockgroup"], unnamed)
    with pytest.raises(ReferenceDataError, match="releases 2020, 2021, 2022, 2023; say which with --release"):
        load_reference("adi_blockgroup", unnamed, database_url=store_url)
    assert load_reference("adi_blockgroup", unnamed, release="2021", database_url=store_url).release == "2021"


def test_a_second_load_needs_replace(store_url: str) -> None:
    load_reference("svi_county", FIXTURES / FILES["svi_county"], database_url=store_url)
    with pytest.raises(
        ReferenceDataError, match="already holds release 2022 from SVI_2022_US_county.csv; pass --replace"
    ):
        load_reference("svi_county", FIXTURES / FILES["svi_county"], database_url=store_url)
    replaced = load_reference(
        "svi_county", FIXTURES / FILES["svi_county"], replace=True, release="2020", database_url=store_url
    )
    assert (replaced.release, replaced.row_count) == ("2020", 4)
    assert _rows(store_url, "SELECT release, row_count FROM population.reference_datasets") == [("2020", 4)]


def test_a_failing_reload_leaves_the_previous_table_intact(store_url: str) -> None:
    load_reference("svi_county", FIXTURES / FILES["svi_county"], database_url=store_url)
    before = _rows(store_url, "SELECT * FROM population.svi_county ORDER BY fips")
    registry = _rows(store_url, "SELECT * FROM population.reference_datasets")
    with pytest.raises(
        ReferenceDataError,
        match="svi_county_bad_value.csv could not be loaded into svi_county, "
        "nothing was changed: line 3, column E_TOTPOP: 'n/a' is not "
        "a whole number",
    ):
        load_reference(
            "svi_county", FIXTURES / "svi_county_bad_value.csv", replace=True, release="2022", database_url=store_url
        )
    assert _rows(store_url, "SELECT * FROM population.svi_county ORDER BY fips") == before
    assert _rows(store_url, "SELECT * FROM population.reference_datasets") == registry
    # A refused header fails before anything is touched, too.
    with pytest.raises(ReferenceDataError):
        load_reference(
            "svi_county", FIXTURES / "svi_county_unexpected_column.csv", replace=True, database_url=store_url
        )
    assert _rows(store_url, "SELECT * FROM population.svi_county ORDER BY fips") == before


def test_a_row_with_too_many_or_too_few_fields_fails_the_whole_load(tmp_path: Path, store_url: str) -> None:
    """The bulk readers' own CSV errors (DuckDB's read_csv, PostgreSQL's COPY) refuse the file, intact table."""
    load_reference("adi_blockgroup", FIXTURES / FILES["adi_blockgroup"], database_url=store_url)
    before = _rows(store_url, "SELECT * FROM population.adi_blockgroup ORDER BY fips")
    lines = (FIXTURES / FILES["adi_blockgroup"]).read_text().splitlines()
    for name, row in (("long", f'{lines[2]},"9"'), ("short", lines[2].rsplit(",", 1)[0])):
        ragged = tmp_path / f"US_2023_ADI_{name}.csv"
        ragged.write_text("\n".join([*lines[:2], row, *lines[3:]]) + "\n")
        with pytest.raises(ReferenceDataError, match=rf"US_2023_ADI_{name}.csv could not be .*nothing was changed"):
            load_reference("adi_blockgroup", ragged, replace=True, database_url=store_url)
    assert _rows(store_url, "SELECT * FROM population.adi_blockgroup ORDER BY fips") == before
    assert _rows(store_url, "SELECT release FROM population.reference_datasets") == [("2022",)]


def test_a_duplicate_key_fails_the_whole_load(tmp_path: Path, store_url: str) -> None:
    lines = (FIXTURES / FILES["adi_blockgroup"]).read_text().splitlines()
    duplicated = tmp_path / "US_2023_ADI.csv"
    duplicated.write_text("\n".join([*lines, lines[1].replace("73", "12")]) + "\n")
    with pytest.raises(ReferenceDataError, match="nothing was changed"):
        load_reference("adi_blockgroup", duplicated, database_url=store_url)
    assert _rows(store_url, "SELECT count(*) FROM population.adi_blockgroup") == [(0,)]


# --- command line ---------------------------------------------------------------


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_load_and_status(store_url: str) -> None:
    out = _ok("reference", "status", "--database-url", store_url)
    assert re.search(r"svi_county\s+not loaded \(accepts release 2020, 2022\)", out)
    out = _ok("reference", "load", "svi_county", str(FIXTURES / FILES["svi_county"]), "--database-url", store_url)
    digest = hashlib.sha256((FIXTURES / FILES["svi_county"]).read_bytes()).hexdigest()
    assert out.strip() == f"loaded svi_county release 2022 from SVI_2022_US_county.csv: 4 rows (sha256 {digest})"
    out = _ok(
        "reference",
        "load",
        "adi_blockgroup",
        str(FIXTURES / FILES["adi_blockgroup"]),
        "--release",
        "2022",
        "--replace",
        "--database-url",
        store_url,
    )
    assert "7 rows" in out
    out = _ok("reference", "status", "--database-url", store_url)
    assert re.search(rf"svi_county\s+release 2022, 4 rows from SVI_2022_US_county.csv, sha256 {digest}, loaded ", out)
    assert re.search(r"adi_blockgroup\s+release 2022, 7 rows", out)
    assert re.search(r"places_tract\s+not loaded", out)


def test_cli_refusal_is_one_line(duckdb_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "reference",
                "load",
                "places_tract",
                str(FIXTURES / "places_tract_missing_column.csv"),
                "--database-url",
                duckdb_url,
            ]
        )
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: places_tract_missing_column.csv is not a CDC PLACES")
    assert "DIABETES_CrudePrev" in err and "--debug" not in err


def test_db_status_counts_the_population_tables(duckdb_url: str) -> None:
    load_reference("svi_county", FIXTURES / FILES["svi_county"], database_url=duckdb_url)
    out = _ok("db", "status", "--database-url", duckdb_url)
    assert re.search(r"population\.svi_county\s*│\s*4\b", out)
    assert re.search(r"population\.reference_datasets\s*│\s*1\b", out)


# --- profiles and the scenario join ---------------------------------------------


def test_county_profile_puts_places_and_svi_together(loaded_url: str) -> None:
    with session_scope(get_engine(loaded_url)) as session:
        profile = county_profile(session, 1001)  # a number that lost its leading zero
        assert (profile.level, profile.fips, profile.name, profile.county_name, profile.state) == (
            "county",
            "01001",
            "Autauga",
            "Autauga",
            "AL",
        )
        assert len(profile.places) == 80  # 40 measures, crude and age-adjusted
        assert isinstance(profile.places["diabetes"], Decimal)
        assert isinstance(profile.places["diabetes_adj"], Decimal)
        assert profile.svi["e_totpop"] == 58761
        assert profile.svi["rpl_themes"] == pytest.approx(0.2979)
        assert profile.releases == {"places_county": "2024", "svi_county": "2022"}
        assert profile.theme("rpl_theme1") == "socioeconomic status"

        loving = county_profile(session, "48301")  # in SVI only
        # In SVI only, whose COUNTY is "Loving County": the name is spelled as PLACES would.
        assert loving.places is None and (loving.name, loving.county_name) == ("Loving", "Loving")
        assert loving.svi["rpl_themes"] is None


def test_tract_profile(loaded_url: str) -> None:
    with session_scope(get_engine(loaded_url)) as session:
        profile = tract_profile(session, "48201311500")
        assert (profile.name, profile.county_name) == ("Census Tract 3115, Harris County", "Harris")
        assert len(profile.places) == 40
        assert profile.places["teethlost"] is None
        assert profile.svi["rpl_themes"] == pytest.approx(0.7712)
        assert profile.releases == {"places_tract": "2024", "svi_tract": "2022"}


def test_profiles_refuse_unknown_and_malformed_codes(loaded_url: str) -> None:
    with session_scope(get_engine(loaded_url)) as session:
        with pytest.raises(
            ReferenceDataError,
            match=r"no county 99999 in population.places_county or "
            r"population.svi_county \(places_county 2024, svi_county 2022\)",
        ):
            county_profile(session, "99999")
        with pytest.raises(ReferenceDataError, match="'48-201' is not a county FIPS code: expected 5 digits"):
            county_profile(session, "48-201")
        with pytest.raises(ReferenceDataError, match="is not a tract FIPS code: expected 11 digits"):
            tract_profile(session, "482013115001")


def _patient(mrn: str, given: str, address: dict) -> dict:
    return {
        "id": f"PAT-{mrn}",
        "mrn": mrn,
        "name": {"given_name": given, "family_name": "Test"},
        "birth_date": "1970-01-01",
        "gender": "F",
        "address": address,
    }


def test_patients_join_svi_through_their_county(store_url: str) -> None:
    load_reference("svi_county", FIXTURES / FILES["svi_county"], database_url=store_url)
    save_scenario(
        "cohort",
        {
            "patient": [
                _patient("M1", "Ana", {"city": "Houston", "state": "TX", "county_fips": "48201"}),
                _patient("M2", "Bea", {"city": "Prattville", "state": "AL", "county_fips": "01001"}),
                _patient("M3", "Cai", {"city": "Boston", "state": "MA"}),  # no county: no SVI
                _patient("M4", "Dee", {"state": "TX", "county_fips": "48301"}),  # SVI suppressed
            ]
        },
        database_url=store_url,
    )
    save_scenario("other", {"patient": [_patient("M9", "Eve", {"county_fips": "06037"})]}, database_url=store_url)
    with session_scope(get_engine(store_url)) as session:
        rows = patients_with_svi(session, "cohort")
    assert [(r["mrn"], r["county_fips"], r["county_name"]) for r in rows] == [
        ("M1", "48201", "Harris"),
        ("M2", "01001", "Autauga"),
        ("M3", None, None),
        ("M4", "48301", "Loving"),
    ]
    assert rows[0]["rpl_themes"] == pytest.approx(0.8921)
    assert rows[3]["rpl_themes"] is None and rows[3]["e_totpop"] == 57
    assert set(rows[0]) >= {"given_name", "family_name", "state", "rpl_theme1", "rpl_theme4", "f_total"}


def test_the_join_names_a_missing_scenario(duckdb_url: str) -> None:
    from healthsim_models import ScenarioNotFoundError

    with session_scope(get_engine(duckdb_url)) as session, pytest.raises(ScenarioNotFoundError):
        patients_with_svi(session, "nowhere")


def _doc_examples() -> list[str]:
    text = (REPO / "docs" / "reference-data.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_the_documented_example_runs(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/reference-data.md's example, run as written, in a folder holding the published files."""
    (example,) = _doc_examples()
    monkeypatch.chdir(FIXTURES)
    exec(compile(example, "docs/reference-data.md example", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "MRN-1 Harris county_fips 0.8921"
    assert out[1] == "MRN-2 Autauga county_fips 0.2979"
    assert out[2] == "MRN-3 None None None"
    assert out[3] == "MRN-4 Harris county 0.8921"
    assert out[4].startswith("Harris TX diabetes ")
    assert (isolated_home / "healthsim.duckdb").is_file()


def test_the_documented_sql_join_runs_on_both_backends(store_url: str) -> None:
    (sql,) = re.findall(r"```sql\n(.*?)```", (REPO / "docs" / "reference-data.md").read_text(), re.S)
    load_reference("svi_county", FIXTURES / FILES["svi_county"], database_url=store_url)
    save_scenario(
        "gulf-coast-diabetes",
        {
            "patient": [
                _patient("MRN-1", "Rosa", {"city": "Houston", "state": "TX", "county_fips": "48201"}),
                _patient("MRN-2", "June", {"city": "Prattville", "state": "AL", "county_fips": 1001}),
                _patient("MRN-3", "Ida", {"city": "Boston", "state": "MA"}),
            ]
        },
        database_url=store_url,
    )
    assert _rows(store_url, sql.strip().rstrip(";")) == [
        ("MRN-1", "Harris County", 0.8921),
        ("MRN-2", "Autauga County", 0.2979),
        ("MRN-3", None, None),
    ]


def test_svi_minus_999_is_the_marker_however_the_number_is_written(tmp_path: Path, store_url: str) -> None:
    """-999.0, -999.00 and -999 with blanks around are the marker too; -9990 and -999.5 are numbers."""
    text = (FIXTURES / FILES["svi_county"]).read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    loving = next(i for i, line in enumerate(lines) if line.startswith("48,Texas,TX,48301"))
    spellings = iter(["-999.0", " -999 ", "-999.00", "-999.", "-999.0", " -999.000", "-999", "-999.0"])
    lines[loving] = re.sub(r"(?<=,)-999(?=,|$)", lambda _: next(spellings), lines[loving])
    assert next(spellings, None) is None  # all eight markers respelled
    harris = next(i for i, line in enumerate(lines) if line.startswith("48,Texas,TX,48201"))
    header, cells = csv.reader([lines[0], lines[harris]])
    cells[header.index("M_TOTPOP")], cells[header.index("EP_POV150")] = "-9990", "-999.5"
    lines[harris] = ",".join(f'"{c}"' for c in cells)
    respelled = tmp_path / "SVI_2022_US_county.csv"
    respelled.write_text("\n".join(lines) + "\n")
    load_reference("svi_county", respelled, database_url=store_url)
    row = _rows(
        store_url,
        "SELECT e_totpop, rpl_themes, rpl_theme1, f_pov150, m_hburd, suppressed_columns "
        "FROM population.svi_county WHERE fips = '48301'",
    )[0]
    assert row[:5] == (57, None, None, None, None)
    assert row[5].split(",") == [
        "m_hburd",
        "ep_pov150",
        "epl_pov150",
        "spl_theme1",
        "rpl_theme1",
        "spl_themes",
        "rpl_themes",
        "f_pov150",
    ]
    assert _rows(
        store_url, "SELECT m_totpop, ep_pov150, suppressed_columns FROM population.svi_county WHERE fips = '48201'"
    ) == [(-9990.0, -999.5, None)]


def _adi_file(path: Path, rows: int, bad: dict[tuple[int, str], str]) -> Path:
    """An ADI file of ``rows`` data rows; ``bad`` puts a value at (line, column), the header being line 1."""
    lines = ["GISJOIN,FIPS,ADI_NATRANK,ADI_STATERNK"]
    for line in range(2, rows + 2):
        cells = {"GISJOIN": f"G{line}", "FIPS": f"{10010201000 + line}", "ADI_NATRANK": "50", "ADI_STATERNK": "5"}
        cells.update({column: value for (at, column), value in bad.items() if at == line})
        lines.append(",".join(cells.values()))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_bad_value_is_refused_naming_column_line_and_value(tmp_path: Path, store_url: str) -> None:
    """The first bad row is named (not the first bad column), the column as the file spells it,
    and the value; nothing is written and the previous load stays."""
    load_reference("adi_blockgroup", FIXTURES / FILES["adi_blockgroup"], database_url=store_url)
    before = _rows(store_url, "SELECT * FROM population.adi_blockgroup ORDER BY fips")
    bad = _adi_file(tmp_path / "US_2022_ADI.csv", 300, {(61, "ADI_NATRANK"): "n/a", (40, "ADI_STATERNK"): "7x"})
    with pytest.raises(
        ReferenceDataError,
        match=r"^US_2022_ADI.csv could not be loaded into adi_blockgroup, "
        r"nothing was changed: line 40, column ADI_STATERNK: '7x' is not "
        r"a whole number \(lines counted from the header, line 1\)$",
    ):
        load_reference("adi_blockgroup", bad, replace=True, database_url=store_url)
    assert _rows(store_url, "SELECT * FROM population.adi_blockgroup ORDER BY fips") == before
    assert _rows(store_url, "SELECT release, row_count FROM population.reference_datasets") == [("2022", 7)]
    last = _adi_file(tmp_path / "US_2021_ADI.csv", 5, {(6, "ADI_NATRANK"): "many"})
    with pytest.raises(ReferenceDataError, match=r"line 6, column ADI_NATRANK: 'many' is not a whole number"):
        load_reference("adi_blockgroup", last, replace=True, database_url=store_url)


def test_a_bad_measure_or_interval_is_refused_by_name(tmp_path: Path, store_url: str) -> None:
    source = FIXTURES / FILES["places_county"]
    header, *rows = list(csv.reader(source.open(encoding="utf-8-sig", newline="")))
    for column, value, kind in (
        ("DIABETES_CrudePrev", "12,5", "a number of at most 3 digits before the decimal point"),
        ("OBESITY_AdjPrev", "1234.5", "a number of at most 3 digits before the decimal point"),
        ("ACCESS2_Crude95CI", "(8.7, high)", "a number of at most 3 digits before the decimal point"),
    ):
        changed = [list(r) for r in rows]
        changed[1][header.index(column)] = value
        path = tmp_path / source.name
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([header, *changed])
        with pytest.raises(
            ReferenceDataError,
            match=rf"nothing was changed: line 3, column {column}: "
            rf"{re.escape(repr(value))} is not {kind}",
        ):
            load_reference("places_county", path, database_url=store_url)
    assert _rows(store_url, "SELECT count(*) FROM population.places_county") == [(0,)]


def test_integer_cells_written_as_whole_decimals_load_alike_on_both_backends(tmp_path: Path, store_url: str) -> None:
    """73.0 (a spreadsheet's rank) loads as 73 on DuckDB and PostgreSQL; 73.5 and 1e2 are refused on both."""
    path = _adi_file(
        tmp_path / "US_2022_ADI.csv",
        4,
        {
            (2, "ADI_NATRANK"): "73.0",
            (3, "ADI_NATRANK"): " 100.00 ",
            (4, "ADI_STATERNK"): "7.",
            (5, "ADI_NATRANK"): "GQ",
        },
    )
    load_reference("adi_blockgroup", path, database_url=store_url)
    assert _rows(
        store_url,
        "SELECT adi_natrank, adi_natrank_suppression, adi_staternk FROM population.adi_blockgroup ORDER BY fips",
    ) == [(73, None, 5), (100, None, 5), (50, None, 7), (None, "GQ", 5)]
    for value in ("73.5", "1e2", "7.0.0", "0x10"):
        bad = _adi_file(tmp_path / "US_2022_ADI.csv", 3, {(3, "ADI_STATERNK"): value})
        with pytest.raises(ReferenceDataError, match=rf"line 3, column ADI_STATERNK: '{value}' is not a whole number"):
            load_reference("adi_blockgroup", bad, replace=True, database_url=store_url)
    assert _rows(store_url, "SELECT count(*) FROM population.adi_blockgroup") == [(4,)]
    svi = tmp_path / "SVI_2022_US_county.csv"
    svi.write_text((FIXTURES / FILES["svi_county"]).read_text(encoding="utf-8-sig").replace(",58761,", ",58761.0,"))
    load_reference("svi_county", svi, database_url=store_url)
    assert _rows(store_url, "SELECT e_totpop FROM population.svi_county WHERE fips = '01001'") == [(58761,)]


def test_tract_names_come_from_svi_and_are_never_made_up(tmp_path: Path, store_url: str) -> None:
    """PLACES alone has no tract name (None); SVI 2022 writes LOCATION with semicolons, 2020 with commas."""
    load_reference("places_tract", FIXTURES / FILES["places_tract"], database_url=store_url)
    with session_scope(get_engine(store_url)) as session:
        places_only = tract_profile(session, "01001020100")
    assert (places_only.name, places_only.county_name, places_only.svi) == (None, "Autauga", None)
    text = (FIXTURES / FILES["svi_tract"]).read_text(encoding="utf-8-sig")
    semicolons = tmp_path / "SVI_2022_US.csv"
    semicolons.write_text(
        text.replace('"Census Tract 201, Autauga County, Alabama"', '"Census Tract 201; Autauga County; Alabama"')
    )
    assert "Census Tract 201; Autauga County; Alabama" in semicolons.read_text()
    load_reference("svi_tract", semicolons, database_url=store_url)
    with session_scope(get_engine(store_url)) as session:
        both = tract_profile(session, "01001020100")
        svi_only = tract_profile(session, "48201980000")
    assert (both.name, both.county_name) == ("Census Tract 201, Autauga County", "Autauga")
    assert (svi_only.name, svi_only.county_name, svi_only.places) == (
        "Census Tract 9800, Harris County",
        "Harris",
        None,
    )


@pytest.mark.parametrize(
    ("published", "bare"),
    [
        ("Loving County", "Loving"),
        ("Orleans Parish", "Orleans"),
        ("Juneau City and Borough", "Juneau"),
        ("Nome Census Area", "Nome"),
        ("Anchorage Municipality", "Anchorage"),
        ("Richmond city", "Richmond"),
        ("Kodiak Island Borough", "Kodiak Island"),
        (" Autauga ", "Autauga"),
        ("Countyline", "Countyline"),
    ],
)
def test_bare_county_names(published: str, bare: str) -> None:
    assert bare_county_name(published) == bare


def _svi_county_with(tmp_path: Path, *counties: tuple[str, str, str, str, str]) -> Path:
    """The SVI county fixture plus counties (state FIPS, state, abbreviation, county FIPS, name), values as Harris."""
    header, *rows = list(csv.reader((FIXTURES / FILES["svi_county"]).open(encoding="utf-8-sig", newline="")))
    harris = next(r for r in rows if r[header.index("FIPS")] == "48201")
    for st, state, abbr, fips, name in counties:
        row = dict(zip(header, harris, strict=True))
        row.update(ST=st, STATE=state, ST_ABBR=abbr, STCNTY=fips, FIPS=fips, COUNTY=name, LOCATION=f"{name}, {state}")
        rows.append(list(row.values()))
    path = tmp_path / "SVI_2022_US_county.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def test_patients_without_a_county_code_join_svi_by_state_and_county_name(tmp_path: Path, store_url: str) -> None:
    """The canonical example's address.county "Franklin" (state OH) finds Franklin County; a code written as a
    number or without its zeros is padded; a name naming two counties (Richmond, VA) matches neither."""
    svi = _svi_county_with(
        tmp_path,
        ("39", "Ohio", "OH", "39049", "Franklin County"),
        ("51", "Virginia", "VA", "51760", "Richmond city"),
        ("51", "Virginia", "VA", "51159", "Richmond County"),
        ("22", "Louisiana", "LA", "22071", "Orleans Parish"),
    )
    load_reference("svi_county", svi, database_url=store_url)
    runner_result = runner.invoke(
        app,
        [
            "scenario",
            "import",
            str(REPO / "tests" / "fixtures" / "scenario-canonical.json"),
            "--database-url",
            store_url,
        ],
    )
    assert runner_result.exit_code == 0, runner_result.output
    save_scenario(
        "named",
        {
            "patient": [
                _patient("N1", "Ana", {"state": "TX", "county_fips": 48201}),  # a JSON number
                _patient("N2", "Bea", {"state": "AL", "county_fips": "1001"}),  # lost its leading zero
                _patient("N3", "Cai", {"state": "VA", "county": "Richmond"}),  # city or county: ambiguous
                _patient("N4", "Dee", {"state": "VA", "county": "richmond CITY"}),  # as written, any case
                _patient("N5", "Eve", {"state": "LA", "county": " orleans "}),  # Parish normalised away
                _patient(
                    "N6", "Fay", {"state": "TX", "county_fips": "48-201", "county": "Harris County"}
                ),  # not a code
                _patient("N7", "Gil", {"state": "TX", "county_fips": "99999", "county": "Harris"}),  # the code wins
                _patient("N8", "Hal", {"state": "OH", "county": "Franklin"}),  # no such county in TX, but in OH
                _patient("N9", "Ivy", {"state": "TX", "county": "Franklin"}),
            ]
        },
        database_url=store_url,
    )
    with session_scope(get_engine(store_url)) as session:
        canonical = patients_with_svi(session, "riverbend-cross-product-demo")
        named = patients_with_svi(session, "named")
    assert [(r["mrn"], r["county_fips"], r["county_from"], r["county_name"]) for r in canonical] == [
        ("MRN-100231", "39049", "county", "Franklin"),
        ("MRN-100232", None, None, None),
        ("MRN-100233", None, None, None),
    ]
    assert canonical[0]["rpl_themes"] == pytest.approx(0.8921)
    assert [(r["mrn"], r["county_fips"], r["county_from"], r["county_name"]) for r in named] == [
        ("N1", "48201", "county_fips", "Harris"),
        ("N2", "01001", "county_fips", "Autauga"),
        ("N3", None, None, None),
        ("N4", "51760", "county", "Richmond"),
        ("N5", "22071", "county", "Orleans"),
        ("N6", "48201", "county", "Harris"),
        ("N7", "99999", "county_fips", None),
        ("N8", "39049", "county", "Franklin"),
        ("N9", None, None, None),
    ]
    assert named[6]["rpl_themes"] is None and named[5]["rpl_themes"] == pytest.approx(0.8921)


def test_the_demo_generator_writes_no_county(duckdb_url: str) -> None:
    """What docs/reference-data.md says of the demo scenario: no county code nor name, so no SVI match."""
    from healthsim_state.demo import scenario

    patients = list(scenario(50)["patient"])
    assert len(patients) == 50
    assert all(set(p["address"]) == {"street_address", "city", "state", "postal_code"} for p in patients)
