"""The project's exceptions. Every message says what went wrong and what to do."""

from __future__ import annotations


class HealthSimError(Exception):
    """Base of every error raised on purpose by HealthSim Store."""


class ConfigurationError(HealthSimError):
    """A database URL or setting cannot be used."""


class SchemaVersionError(HealthSimError):
    """The database schema is at a revision this code cannot work with."""


class StoreLockedError(HealthSimError):
    """Another process holds the DuckDB file and did not let go in time."""


class NotAStoreError(ConfigurationError):
    """The database at the URL is not a HealthSim store (a SQLite file, another
    program's DuckDB file, ...); it was left untouched."""


class WriteConflictError(HealthSimError):
    """Concurrent writers kept conflicting (deadlock or serialization failure)
    after the bounded retries; nothing of this call was written."""


class UnknownEntityTypeError(HealthSimError, KeyError):
    """A name that is not one of the registered entity types (singular or plural)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class ScenarioNotFoundError(HealthSimError, LookupError):
    """No scenario has the given name or id; ``name`` is the one looked up, so that each
    interface can word its own hint (the message names a Python function)."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class AmbiguousEntityError(HealthSimError, LookupError):
    """A business key (an MRN, say) names entities in several scenarios; the caller must choose one."""


#: The name this error had when patients were the only type looked up by key.
AmbiguousPatientError = AmbiguousEntityError


class ScenarioExistsError(HealthSimError):
    """A scenario of that name exists and the call did not ask to overwrite it."""


class DocumentError(HealthSimError, ValueError):
    """A scenario document or legacy file cannot be read: not JSON, truncated,
    the wrong shape or an unsupported version. The message names the file,
    the position and the problem; nothing was written."""


class SyntheaError(DocumentError):
    """A Synthea CSV folder cannot be imported as given: a file missing or
    malformed, a cell not of its column's type, a reference to a row the
    import lacks. The message names the file, line and column (also kept in
    ``file``, ``line`` and ``column`` where known); nothing was written."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, column: str | None = None):
        super().__init__(message)
        self.file = file
        self.line = line
        self.column = column


class QueryError(HealthSimError):
    """A read-only SQL query failed or tried to write; the message is the database's."""


class QueryTimeoutError(QueryError):
    """A read-only SQL query ran longer than the statement timeout and was cancelled."""


class InvalidArgumentError(HealthSimError, ValueError):
    """A call's arguments (an MCP tool call's, say) are missing, of the wrong
    type, or refused; the message names the argument and why."""


class ReferenceDataError(HealthSimError, ValueError):
    """A reference data file (PLACES, SVI, ADI) cannot be loaded as given; nothing was changed."""


class Problem:
    """One thing wrong with one input entity."""

    __slots__ = ("entity_id", "entity_type", "field", "position", "reason")

    def __init__(self, entity_type: str, position: int | None, entity_id: str | None, field: str, reason: str) -> None:
        self.entity_type = entity_type
        self.position = position
        self.entity_id = entity_id
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        where = self.entity_type if self.position is None else f"{self.entity_type}[{self.position}]"
        ident = f" (id {self.entity_id})" if self.entity_id else ""
        return f"{where}{ident} {self.field}: {self.reason}"

    def __repr__(self) -> str:
        return f"Problem({str(self)!r})"


class ValidationError(HealthSimError, ValueError):
    """Input entities break the canonical rules; nothing was written.

    ``problems`` lists each one (type, position, id, field, reason), up to a
    bound; ``truncated`` says whether more were found than listed.
    """

    def __init__(self, problems: list[Problem], *, truncated: bool = False) -> None:
        self.problems = problems
        self.truncated = truncated
        count = f"{len(problems)}{'+' if truncated else ''} problem{'s' if len(problems) != 1 else ''}"
        # First line stands alone (the CLI shows one line); the rest follow.
        head = f"{count} in the input, nothing was saved: {problems[0]}"
        rest = "".join(f"\n  - {p}" for p in problems[1:])
        super().__init__(head + rest)


class VocabularyError(HealthSimError, ValueError):
    """An OMOP vocabulary folder that cannot be used: missing, incomplete or unreadable."""


class OmopSchemaNotFoundError(HealthSimError, LookupError):
    """The store has no OMOP CDM schema of that name (none of the CDM's tables is there)."""

    def __init__(self, schema: str) -> None:
        super().__init__(
            f"no OMOP CDM tables in schema {schema!r}: build them first with 'healthsim analytics omop"
            + (f" --schema {schema}" if schema != "omop" else "")
            + "' (build_omop in Python)"
        )
        self.schema = schema


class EntityNotFoundError(HealthSimError, LookupError):
    """No entity of the type has the id or key given (now, or at the time asked)."""


class LakeError(HealthSimError):
    """A lake export cannot be written: its target, format or storage options are unusable."""


class BackupError(HealthSimError):
    """A backup cannot be written, read or restored, or a store cannot be copied,
    as asked; the message names the folder, table or store and why. A failed
    restore or copy changed nothing; a failed backup left no folder behind."""
