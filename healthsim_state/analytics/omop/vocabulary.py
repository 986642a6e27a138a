"""The OMOP vocabulary: read from an Athena-style folder, used to map codes, written back in part.

A vocabulary folder holds CONCEPT.csv and CONCEPT_RELATIONSHIP.csv, and
optionally VOCABULARY.csv, DOMAIN.csv and CONCEPT_CLASS.csv, tab-separated
with YYYYMMDD dates as Athena ships them, or comma-separated with
YYYY-MM-DD dates. A private in-memory DuckDB reads them (only the "Maps to"
relationships are kept) into clean CSV files, which the store stages into
temporary tables ``hs_vocab_*``; without a folder those tables are empty.

``hs_concept_map`` then gives each (vocabulary, code) the events use its
source concept, the standard concept it maps to and that concept's domain;
``hs_unit_map`` each UCUM code its concept. At the end of a build,
:func:`write_vocabulary` adds to the OMOP vocabulary tables the concepts the
export references (and the fixed ones of :mod:`.concepts`) with their
vocabulary, domain and class rows, keeping the rows earlier builds wrote.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
from sqlalchemy.orm import Session

from healthsim_models.errors import VocabularyError
from healthsim_state.analytics.omop import concepts as c
from healthsim_state.analytics.omop.scope import temp_table
from healthsim_state.store.dialects import dialect_of

CONCEPT_MAP = "hs_concept_map"
UNIT_MAP = "hs_unit_map"


@dataclass(frozen=True)
class _File:
    name: str
    table: str
    columns: tuple[tuple[str, str], ...]  # (column, SQL type)
    required: bool


_DATE = "date"
_FILES = (
    _File(
        "CONCEPT.csv",
        "hs_vocab_concept",
        (
            ("concept_id", "integer"),
            ("concept_name", "varchar"),
            ("domain_id", "varchar"),
            ("vocabulary_id", "varchar"),
            ("concept_class_id", "varchar"),
            ("standard_concept", "varchar"),
            ("concept_code", "varchar"),
            ("valid_start_date", _DATE),
            ("valid_end_date", _DATE),
            ("invalid_reason", "varchar"),
        ),
        True,
    ),
    _File(
        "CONCEPT_RELATIONSHIP.csv",
        "hs_vocab_maps",
        (("concept_id_1", "integer"), ("concept_id_2", "integer")),
        True,
    ),
    _File(
        "VOCABULARY.csv",
        "hs_vocab_vocabulary",
        (
            ("vocabulary_id", "varchar"),
            ("vocabulary_name", "varchar"),
            ("vocabulary_reference", "varchar"),
            ("vocabulary_version", "varchar"),
            ("vocabulary_concept_id", "integer"),
        ),
        False,
    ),
    _File(
        "DOMAIN.csv",
        "hs_vocab_domain",
        (("domain_id", "varchar"), ("domain_name", "varchar"), ("domain_concept_id", "integer")),
        False,
    ),
    _File(
        "CONCEPT_CLASS.csv",
        "hs_vocab_class",
        (("concept_class_id", "varchar"), ("concept_class_name", "varchar"), ("concept_class_concept_id", "integer")),
        False,
    ),
)


def check_folder(folder: Path) -> Path:
    """``folder`` if it is a vocabulary folder; raises :class:`VocabularyError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VocabularyError(f"vocabulary folder {str(folder)!r} is not a folder")
    for spec in _FILES:
        if spec.required and not (folder / spec.name).is_file():
            raise VocabularyError(f"vocabulary folder {str(folder)!r} has no {spec.name} (an Athena download has it)")
    return folder


def _clean_select(spec: _File, path: Path) -> str:
    """The private DuckDB's SELECT of one vocabulary file, typed and with ISO dates."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        header = handle.readline().rstrip("\r\n")
    delimiter = "\t" if "\t" in header else ","
    names = {name.strip().strip('"').lower(): name.strip().strip('"') for name in header.split(delimiter)}
    wanted = [name for name, _ in spec.columns]
    if spec.table == "hs_vocab_maps":
        wanted += ["relationship_id", "invalid_reason"]
    missing = [name for name in wanted if name not in names]
    if missing:
        raise VocabularyError(f"{path}: no column {missing[0]!r} in the header line")
    # Athena's tab-separated files are not quoted; a '"' in a concept name is a character.
    quoting = "quote = '', escape = ''" if delimiter == "\t" else "quote = '\"', escape = '\"'"
    source = f"read_csv('{_literal(path)}', delim = '{delimiter}', header = true, all_varchar = true, {quoting})"
    cells = []
    for name, kind in spec.columns:
        cell = f"nullif(trim(\"{names[name]}\"), '')"
        if kind == _DATE:
            cell = f"CASE WHEN length({cell}) = 8 THEN CAST(strptime({cell}, '%Y%m%d') AS DATE) ELSE CAST({cell} AS DATE) END"
        elif kind == "integer":
            cell = f"CAST({cell} AS INTEGER)"
        cells.append(f"{cell} AS {name}")
    where = ""
    if spec.table == "hs_vocab_maps":
        where = (
            f" WHERE \"{names['relationship_id']}\" = 'Maps to' "
            f"AND nullif(trim(\"{names['invalid_reason']}\"), '') IS NULL"
        )
    return f"SELECT {', '.join(cells)} FROM {source}{where}"


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")


def stage_vocabulary(session: Session, folder: Path | None) -> str | None:
    """Fill the ``hs_vocab_*`` tables from ``folder`` (empty without one); returns the
    vocabulary's version (the VOCABULARY.csv row 'None'), if it says."""
    if folder is None:
        for spec in _FILES:
            typed = ", ".join(f"CAST(NULL AS {kind}) AS {name}" for name, kind in spec.columns)
            temp_table(session, spec.table, f"SELECT {typed} WHERE 1 = 0")
        return None
    folder = check_folder(folder)
    connection = session.connection()
    dialect = dialect_of(session)
    reader = duckdb.connect(":memory:")
    try:
        reader.execute("SET enable_progress_bar = false")
        with tempfile.TemporaryDirectory(prefix="healthsim-vocabulary-") as work:
            for spec in _FILES:
                path = folder / spec.name
                clean = Path(work) / spec.name
                names = [name for name, _ in spec.columns]
                if path.is_file():
                    try:
                        reader.execute(
                            f"COPY ({_clean_select(spec, path)}) TO '{_literal(clean)}' (HEADER, DELIMITER ',')"
                        )
                    except duckdb.Error as exc:
                        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        raise VocabularyError(f"{path}: not a readable vocabulary file: {reason}") from None
                else:
                    clean.write_text(",".join(names) + "\n", encoding="utf-8")
                raw = f"{spec.table}_raw"
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {raw}")
                dialect.stage_csv(connection, raw, names, clean)
                typed = ", ".join(f"CAST({name} AS {kind}) AS {name}" for name, kind in spec.columns)
                temp_table(session, spec.table, f"SELECT {typed} FROM {raw}")
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {raw}")
    finally:
        reader.close()
    return connection.exec_driver_sql(
        "SELECT max(vocabulary_version) FROM hs_vocab_vocabulary WHERE vocabulary_id = 'None'"
    ).scalar()


def create_maps(session: Session, events: str) -> None:
    """Fill ``hs_concept_map`` for the codes of ``events`` and ``hs_unit_map``."""
    temp_table(
        session,
        CONCEPT_MAP,
        "WITH mapped AS ("
        "SELECT s.vocabulary_id, s.concept_code, s.concept_id AS source_concept_id, "
        "coalesce(min(t.concept_id), CASE WHEN max(s.standard_concept) = 'S' THEN s.concept_id END) AS concept_id "
        "FROM hs_vocab_concept s "
        f"JOIN (SELECT DISTINCT vocabulary_id, code FROM {events}) e "
        "ON e.vocabulary_id = s.vocabulary_id AND e.code = s.concept_code "
        "LEFT JOIN hs_vocab_maps r ON r.concept_id_1 = s.concept_id "
        "LEFT JOIN hs_vocab_concept t ON t.concept_id = r.concept_id_2 AND t.standard_concept = 'S' "
        "GROUP BY s.vocabulary_id, s.concept_code, s.concept_id), "
        "ranked AS (SELECT m.*, row_number() OVER (PARTITION BY vocabulary_id, concept_code "
        "ORDER BY CASE WHEN concept_id IS NULL THEN 1 ELSE 0 END, source_concept_id) AS n FROM mapped m) "
        "SELECT r.vocabulary_id, r.concept_code, r.source_concept_id, coalesce(r.concept_id, 0) AS concept_id, "
        "t.domain_id FROM ranked r LEFT JOIN hs_vocab_concept t ON t.concept_id = r.concept_id WHERE r.n = 1",
    )
    temp_table(
        session,
        UNIT_MAP,
        "SELECT concept_code, min(concept_id) AS concept_id FROM hs_vocab_concept "
        "WHERE vocabulary_id = 'UCUM' AND standard_concept = 'S' GROUP BY concept_code",
    )


def _fixed_values() -> str:
    rows = []
    for concept in c.FIXED:
        standard = "NULL" if concept.standard is None else f"'{concept.standard}'"
        rows.append(
            f"({concept.concept_id}, '{concept.name}', '{concept.domain_id}', '{concept.vocabulary_id}', "
            f"'{concept.concept_class_id}', {standard}, '{concept.code}')"
        )
    return ", ".join(rows)


def write_vocabulary(session: Session, schema: str, referenced: str, extra_domains: tuple[str, ...]) -> None:
    """Add the concepts of ``referenced`` (SQL giving ``concept_id``) and the fixed ones
    to the OMOP CONCEPT table, then the vocabulary, domain and class rows they need."""
    connection = session.connection()
    connection.exec_driver_sql(
        f"INSERT INTO {schema}.concept (concept_id, concept_name, domain_id, vocabulary_id, concept_class_id, "
        "standard_concept, concept_code, valid_start_date, valid_end_date, invalid_reason) "
        "SELECT v.concept_id, substr(v.concept_name, 1, 255), v.domain_id, v.vocabulary_id, v.concept_class_id, "
        "v.standard_concept, substr(v.concept_code, 1, 50), coalesce(v.valid_start_date, DATE '1970-01-01'), "
        "coalesce(v.valid_end_date, DATE '2099-12-31'), v.invalid_reason "
        f"FROM hs_vocab_concept v WHERE v.concept_id IN ({referenced} UNION SELECT f.id FROM "
        f"(VALUES {', '.join(f'({x.concept_id})' for x in c.FIXED)}) f (id)) "
        f"AND v.concept_id NOT IN (SELECT concept_id FROM {schema}.concept)"
    )
    connection.exec_driver_sql(
        f"INSERT INTO {schema}.concept (concept_id, concept_name, domain_id, vocabulary_id, concept_class_id, "
        "standard_concept, concept_code, valid_start_date, valid_end_date, invalid_reason) "
        "SELECT f.id, f.name, f.domain, f.vocabulary, f.class, f.standard, f.code, DATE '1970-01-01', "
        "DATE '2099-12-31', NULL "
        f"FROM (VALUES {_fixed_values()}) f (id, name, domain, vocabulary, class, standard, code) "
        f"WHERE f.id NOT IN (SELECT concept_id FROM {schema}.concept)"
    )
    known = f"(SELECT concept_id FROM {schema}.concept)"
    connection.exec_driver_sql(
        f"INSERT INTO {schema}.vocabulary (vocabulary_id, vocabulary_name, vocabulary_reference, "
        "vocabulary_version, vocabulary_concept_id) "
        "SELECT n.id, substr(coalesce(max(v.vocabulary_name), n.id), 1, 255), substr(max(v.vocabulary_reference), 1, 255), "
        f"substr(max(v.vocabulary_version), 1, 255), coalesce(max(CASE WHEN v.vocabulary_concept_id IN {known} "
        "THEN v.vocabulary_concept_id END), 0) "
        f"FROM (SELECT DISTINCT vocabulary_id AS id FROM {schema}.concept) n "
        "LEFT JOIN hs_vocab_vocabulary v ON v.vocabulary_id = n.id "
        f"WHERE n.id NOT IN (SELECT vocabulary_id FROM {schema}.vocabulary) GROUP BY n.id"
    )
    extra = " ".join(f"UNION SELECT '{d}'" for d in extra_domains)
    connection.exec_driver_sql(
        f"INSERT INTO {schema}.domain (domain_id, domain_name, domain_concept_id) "
        "SELECT n.id, substr(coalesce(max(d.domain_name), n.id), 1, 255), "
        f"coalesce(max(CASE WHEN d.domain_concept_id IN {known} THEN d.domain_concept_id END), 0) "
        f"FROM (SELECT domain_id AS id FROM {schema}.concept {extra}) n "
        "LEFT JOIN hs_vocab_domain d ON d.domain_id = n.id "
        f"WHERE n.id NOT IN (SELECT domain_id FROM {schema}.domain) GROUP BY n.id"
    )
    connection.exec_driver_sql(
        f"INSERT INTO {schema}.concept_class (concept_class_id, concept_class_name, concept_class_concept_id) "
        "SELECT n.id, substr(coalesce(max(k.concept_class_name), n.id), 1, 255), "
        f"coalesce(max(CASE WHEN k.concept_class_concept_id IN {known} THEN k.concept_class_concept_id END), 0) "
        f"FROM (SELECT DISTINCT concept_class_id AS id FROM {schema}.concept) n "
        "LEFT JOIN hs_vocab_class k ON k.concept_class_id = n.id "
        f"WHERE n.id NOT IN (SELECT concept_class_id FROM {schema}.concept_class) GROUP BY n.id"
    )


def drop_staged(session: Session) -> None:
    connection = session.connection()
    for name in (*(spec.table for spec in _FILES), CONCEPT_MAP, UNIT_MAP):
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
