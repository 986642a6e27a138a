"""Declarative base, naming convention, portable types and the shared mixins.

Every table in the store is declared on the MetaData of :class:`Base`,
through it or through :class:`CanonicalBase` and :class:`PopulationBase`,
which share it. Constraint and index names come from
:data:`NAMING_CONVENTION`, so Alembic revisions can name them and they come
out identical on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateColumn

from healthsim_models import vocab
from healthsim_models.columns import field

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# JSONB on PostgreSQL (indexable, compact); DuckDB has no JSONB but a JSON type.
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# Text compared byte by byte on both backends: DuckDB compares all text so,
# PostgreSQL in the database's collation unless a column says COLLATE "C".
# For key columns holding names the store writes itself (entity type names),
# where a locale's order means nothing and a comparison of the key's index
# would be a locale compare: the links' COPY took 9% less in a database whose
# collation is ICU's en-US, the same in a C.UTF-8 one (docs/performance.md).
ByteOrderText = sa.String().with_variant(sa.String(collation="C"), "postgresql")

# Time zone aware everywhere: DuckDB stores TIMESTAMPTZ as UTC instants and
# PostgreSQL as timestamptz, so both return the same instant.
Timestamp = sa.DateTime(timezone=True)


def Money() -> sa.Numeric:
    """DECIMAL(12,2): money is never a float (canonical-models §0)."""
    return sa.Numeric(12, 2, asdecimal=True)


# String columns carry no length: DuckDB does not enforce VARCHAR(n) and
# PostgreSQL does, so lengths and patterns are checked by the repository's
# validation and behave the same on both backends. Value rules are declared
# on the columns with healthsim_models.columns.field.


# Secondary indexes of the tables a save writes in bulk (the canonical tables
# and the scenario links) exist on PostgreSQL only. DuckDB filters with the
# min-max zone maps it keeps for every column and uses an ART index only for
# point lookups, while it maintains every ART index on each write, holds it in
# memory, and refuses DROP COLUMN, ALTER TYPE and RENAME COLUMN on an indexed
# table. On the embedded store they made a save's commit three times slower
# and the file twice as large, and no query of the store used them
# (docs/performance.md). Primary keys and unique constraints stay everywhere.
SECONDARY_INDEX_DIALECTS = ("postgresql",)


def server_only(index: sa.Index) -> sa.Index:
    """Create ``index`` on :data:`SECONDARY_INDEX_DIALECTS` only."""
    index.info["dialects"] = SECONDARY_INDEX_DIALECTS
    return index.ddl_if(dialect=SECONDARY_INDEX_DIALECTS)


def index_created_on(index: sa.Index, dialect_name: str) -> bool:
    """Whether the schema has ``index`` on a database of ``dialect_name``."""
    return dialect_name in index.info.get("dialects", (dialect_name,))


def duckdb_compression(column: sa.Column[Any], method: str) -> sa.Column[Any]:
    """``column`` created on DuckDB with ``USING COMPRESSION method`` (other
    backends ignore it): DuckDB chooses a column's compression per segment
    unless told, and cannot change it after ``CREATE TABLE``."""
    column.info["duckdb_compression"] = method
    return column


@compiles(CreateColumn, "duckdb")
def _create_column_on_duckdb(create: CreateColumn, compiler: Any, **kw: Any) -> str:
    text = compiler.visit_create_column(create, **kw)
    method = create.element.info.get("duckdb_compression")
    return text if method is None or text is None else f"{text} USING COMPRESSION {method}"


class Base(DeclarativeBase):
    """Declarative base of the store's own tables (scenarios, their links and
    tags, schema history); its MetaData holds every table of the store."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


# The canonical and the population tables have declarative bases of their own
# on the same MetaData: SQLAlchemy sets up a registry's mappers on the first
# ORM use of any of its classes, and those two hold 1,200 column attributes
# (60-90 ms) that a process working with scenarios never touches through the
# ORM (the repository writes and reads their tables with Core and Arrow).


class CanonicalBase(DeclarativeBase):
    """Declarative base of the canonical entity tables."""

    metadata = Base.metadata


class PopulationBase(DeclarativeBase):
    """Declarative base of the population reference tables."""

    metadata = Base.metadata


class TimestampMixin:
    """``created_at`` and ``updated_at``, filled by the database when absent."""

    created_at: Mapped[dt.datetime] = mapped_column(
        Timestamp, nullable=False, server_default=sa.func.now(), sort_order=100
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        Timestamp, nullable=False, server_default=sa.func.now(), sort_order=101
    )


class ProvenanceMixin(TimestampMixin):
    """Where an entity came from (canonical-models §10), mirrored from ``_provenance``.

    ``created_at`` is when the entity was produced (``_provenance.created_at``,
    else the load time); ``updated_at`` is the last time the store wrote it.
    Entities saved without provenance get ``loaded`` / ``import``.
    """

    source_type: Mapped[str] = mapped_column(
        sa.String, nullable=False, server_default=sa.text("'loaded'"), sort_order=102
    )
    source_system: Mapped[str] = mapped_column(
        sa.String, nullable=False, server_default=sa.text("'import'"), sort_order=103
    )
    skill_used: Mapped[str | None] = mapped_column(sa.String, sort_order=104)
    generation_seed: Mapped[int | None] = mapped_column(sa.BigInteger, sort_order=105)


class CanonicalMixin(ProvenanceMixin):
    """Identity and overflow columns shared by the canonical tables.

    ``id`` is the store's UUID for the entity (canonical-models §2);
    ``external_id`` is the ``id`` string the caller sent, verbatim, or NULL;
    ``extensions`` keeps every field the typed columns do not hold, so nothing
    a caller sends is dropped. The table's secondary indexes (``index=True``
    on its columns) are :func:`server_only`.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)  # declares the table, if the class has one
        table = cls.__dict__.get("__table__")
        for index in table.indexes if table is not None else ():
            server_only(index)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, sort_order=-100)
    external_id: Mapped[str | None] = mapped_column(sa.String, sort_order=-99)
    extensions: Mapped[dict[str, Any] | None] = mapped_column(JSONType, sort_order=99)


class PersonMixin:
    """The Person block (canonical-models §3) shared by patients, members and subjects.

    Nested ``name``, ``address`` and ``contact`` objects are flattened to the
    legacy flat spellings, which are also the column names. Indexed for the
    cross-product person match (``ssn``) and name/birth-date searches.
    """

    given_name: Mapped[str] = field(sa.String, nullable=False, path=("name", "given_name"))
    middle_name: Mapped[str | None] = field(sa.String, path=("name", "middle_name"))
    family_name: Mapped[str] = field(sa.String, nullable=False, index=True, path=("name", "family_name"))
    prefix: Mapped[str | None] = field(sa.String, path=("name", "prefix"))
    suffix: Mapped[str | None] = field(sa.String, path=("name", "suffix"))
    birth_date: Mapped[dt.date] = mapped_column(sa.Date, nullable=False, index=True)
    gender: Mapped[str] = field(sa.String, nullable=False, enum=vocab.GENDER)
    ssn: Mapped[str | None] = field(sa.String, index=True, pattern=vocab.SSN)
    street_address: Mapped[str | None] = field(sa.String, path=("address", "street_address"))
    street_address_2: Mapped[str | None] = field(sa.String, path=("address", "street_address_2"))
    city: Mapped[str | None] = field(sa.String, path=("address", "city"))
    state: Mapped[str | None] = field(sa.String, pattern=vocab.STATE, path=("address", "state"))
    postal_code: Mapped[str | None] = field(sa.String, path=("address", "postal_code"))
    country: Mapped[str] = field(sa.String, nullable=False, server_default=sa.text("'US'"), path=("address", "country"))
    phone: Mapped[str | None] = field(sa.String, path=("contact", "phone"))
    phone_mobile: Mapped[str | None] = field(sa.String, path=("contact", "phone_mobile"))
    email: Mapped[str | None] = field(sa.String, pattern=vocab.EMAIL, path=("contact", "email"))
    deceased: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, server_default=sa.false())
    death_date: Mapped[dt.date | None] = mapped_column(sa.Date)
