"""HealthSim Store models: tables, the entity registry, engines and schema versions.

Importing this package declares every table on :data:`Base.metadata`.
"""

from healthsim_models import audit, canonical, history, population, settings, state, system  # noqa: F401  (declare all tables)
from healthsim_models.audit import AuditEvent
from healthsim_models.base import Base, CanonicalBase, CanonicalMixin, PersonMixin, PopulationBase, ProvenanceMixin
from healthsim_models.canonical import *  # noqa: F403
from healthsim_models.canonical import __all__ as _canonical_names
from healthsim_models.engine import (
    create_store_engine,
    dispose_engines,
    get_engine,
    session_factory,
    session_scope,
)
from healthsim_models.errors import (
    AmbiguousEntityError,
    AmbiguousPatientError,
    BackupError,
    ConfigurationError,
    DocumentError,
    EntityNotFoundError,
    HealthSimError,
    InvalidArgumentError,
    LakeError,
    NotAStoreError,
    OmopSchemaNotFoundError,
    Problem,
    QueryError,
    QueryTimeoutError,
    ReferenceDataError,
    ScenarioExistsError,
    ScenarioNotFoundError,
    SchemaVersionError,
    StoreLockedError,
    SyntheaError,
    UnknownEntityTypeError,
    ValidationError,
    VocabularyError,
    WriteConflictError,
)
from healthsim_models.history import HISTORY, Write, history_of
from healthsim_models.location import default_database_url, resolve_database_url
from healthsim_models.registry import ENTITY_TYPES, EntityType, Reference, RefStrength, entity_type
from healthsim_models.settings import Setting
from healthsim_models.state import Scenario, ScenarioEntity, ScenarioTag
from healthsim_models.system import SchemaMigration

__all__ = [
    *_canonical_names,
    "AmbiguousEntityError",
    "BackupError",
    "AmbiguousPatientError",
    "AuditEvent",
    "Base",
    "CanonicalBase",
    "CanonicalMixin",
    "ConfigurationError",
    "DocumentError",
    "EntityNotFoundError",
    "ENTITY_TYPES",
    "EntityType",
    "HISTORY",
    "HealthSimError",
    "InvalidArgumentError",
    "LakeError",
    "NotAStoreError",
    "PersonMixin",
    "PopulationBase",
    "Problem",
    "QueryError",
    "QueryTimeoutError",
    "ProvenanceMixin",
    "ReferenceDataError",
    "RefStrength",
    "Reference",
    "Scenario",
    "ScenarioEntity",
    "ScenarioExistsError",
    "ScenarioNotFoundError",
    "ScenarioTag",
    "SchemaMigration",
    "SchemaVersionError",
    "Setting",
    "StoreLockedError",
    "SyntheaError",
    "UnknownEntityTypeError",
    "ValidationError",
    "OmopSchemaNotFoundError",
    "VocabularyError",
    "Write",
    "WriteConflictError",
    "create_store_engine",
    "default_database_url",
    "dispose_engines",
    "entity_type",
    "get_engine",
    "history_of",
    "resolve_database_url",
    "session_factory",
    "session_scope",
]
