"""HealthSim Store models: tables, the entity registry, engines and schema versions.

Importing this package declares every table on :data:`Base.metadata`.
"""

from healthsim_models import canonical, state, system  # noqa: F401  (declare all tables)
from healthsim_models.base import Base, CanonicalMixin, PersonMixin, ProvenanceMixin
from healthsim_models.canonical import *  # noqa: F403
from healthsim_models.canonical import __all__ as _canonical_names
from healthsim_models.engine import (
    create_store_engine,
    default_database_url,
    dispose_engines,
    get_engine,
    resolve_database_url,
    session_factory,
    session_scope,
)
from healthsim_models.errors import (
    ConfigurationError,
    HealthSimError,
    SchemaVersionError,
    StoreLockedError,
    UnknownEntityTypeError,
)
from healthsim_models.registry import ENTITY_TYPES, EntityType, Reference, RefStrength, entity_type
from healthsim_models.state import Scenario, ScenarioEntity, ScenarioTag
from healthsim_models.system import SchemaMigration

__all__ = [
    *_canonical_names,
    "Base",
    "CanonicalMixin",
    "ConfigurationError",
    "ENTITY_TYPES",
    "EntityType",
    "HealthSimError",
    "PersonMixin",
    "ProvenanceMixin",
    "RefStrength",
    "Reference",
    "Scenario",
    "ScenarioEntity",
    "ScenarioTag",
    "SchemaMigration",
    "SchemaVersionError",
    "StoreLockedError",
    "UnknownEntityTypeError",
    "create_store_engine",
    "default_database_url",
    "dispose_engines",
    "entity_type",
    "get_engine",
    "resolve_database_url",
    "session_factory",
    "session_scope",
]
