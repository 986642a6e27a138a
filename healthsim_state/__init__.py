"""HealthSim Store state layer: scenarios over the canonical tables.

``ScenarioRepository(session)`` saves, loads, lists and deletes scenarios;
``save_scenario``, ``load_scenario``, ``list_scenarios`` and
``delete_scenario`` do the same over a default session. The tables, registry
and engines live in :mod:`healthsim_models`; every project exception is
importable from here and from :mod:`healthsim_models`.
"""

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
from healthsim_state.formats.json import ExportSummary, export_scenario, import_scenario
from healthsim_state.formats.legacy import FileReport, legacy_status, migrate_legacy
from healthsim_state.formats.synthea import SyntheaSummary, import_synthea
from healthsim_state.state_manager import (
    delete_scenario,
    list_scenarios,
    load_scenario,
    save_scenario,
)
from healthsim_state.store.query import QueryResult, run_query
from healthsim_state.store.repository import (
    LoadedScenario,
    SaveSummary,
    ScenarioInfo,
    ScenarioRepository,
)

__all__ = [
    "AmbiguousEntityError",
    "AmbiguousPatientError",
    "BackupError",
    "ConfigurationError",
    "DocumentError",
    "EntityNotFoundError",
    "ExportSummary",
    "FileReport",
    "HealthSimError",
    "InvalidArgumentError",
    "LakeError",
    "LoadedScenario",
    "NotAStoreError",
    "OmopSchemaNotFoundError",
    "Problem",
    "QueryError",
    "QueryResult",
    "QueryTimeoutError",
    "ReferenceDataError",
    "SaveSummary",
    "ScenarioExistsError",
    "ScenarioInfo",
    "ScenarioNotFoundError",
    "ScenarioRepository",
    "SchemaVersionError",
    "StoreLockedError",
    "SyntheaError",
    "SyntheaSummary",
    "UnknownEntityTypeError",
    "ValidationError",
    "VocabularyError",
    "WriteConflictError",
    "delete_scenario",
    "export_scenario",
    "import_scenario",
    "import_synthea",
    "legacy_status",
    "list_scenarios",
    "load_scenario",
    "migrate_legacy",
    "run_query",
    "save_scenario",
]
