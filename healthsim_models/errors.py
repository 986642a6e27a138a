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


class UnknownEntityTypeError(HealthSimError, KeyError):
    """A name that is not one of the 18 entity types (singular or plural)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])
