"""What every scenario format shares: progress reporting and the scenario header.

A format reports progress through a :data:`ProgressFactory` (the command
line passes one that draws bars) and checks the header fields it carries
(name, description, tags, id, creation time) with :func:`check_header_fields`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from healthsim_models.errors import DocumentError
from healthsim_state.codec.checks import scenario_problems, tag_problem
from healthsim_state.codec.values import DATETIME_PATTERN, shown

#: ``progress(description, total)`` -> context manager yielding ``advance(n)``;
#: ``healthsim_state.interfaces.cli.terminal.progress`` is one.
Advance = Callable[[int], None]


ProgressFactory = Callable[[str, int | None], AbstractContextManager[Advance]]


@contextlib.contextmanager
def no_progress(description: str, total: int | None = None) -> Iterator[Advance]:
    """The default progress factory: reports nothing."""
    yield lambda n=1: None


def counted(items: Iterable[Any], advance: Advance) -> Iterator[Any]:
    """``items``, calling ``advance(1)`` as each is consumed."""
    for item in items:
        yield item
        advance(1)


@dataclass
class HeaderFields:
    """A scenario's checked name, description, tags, id and creation time."""

    name: str
    description: str | None
    tags: list[str]
    scenario_id: uuid.UUID | None
    created_at: dt.datetime | None


def check_header_fields(
    header: dict[str, Any], fail: Callable[[str, str], DocumentError], *, id_key: str = "scenario_id"
) -> HeaderFields:
    """The scenario fields of a document header (or a legacy file's metadata), checked.

    ``fail(key, problem)`` makes the error for a bad value, so each caller says
    where the key is; the scenario id is read from ``id_key``.
    """
    name = header.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("name", "required, a non-empty string")
    description = header.get("description")
    if description is not None and not isinstance(description, str):
        raise fail("description", f"expected a string or null, got {shown(description)}")
    tags = header.get("tags")
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        raise fail("tags", f"expected an array of non-empty strings, got {shown(tags)}")
    # Then the text checks save() makes, reported where the key is: NUL, lone surrogates, length.
    problems = scenario_problems(name, description, None)
    if problems:
        raise fail(problems[0].field, problems[0].reason)
    for tag in tags:
        reason = tag_problem(tag)
        if reason is not None:
            raise fail("tags", reason)
    scenario_id = header.get(id_key)
    if scenario_id is not None:
        try:
            scenario_id = uuid.UUID(scenario_id) if isinstance(scenario_id, str) else None
        except ValueError:
            scenario_id = None
        if scenario_id is None:
            raise fail(id_key, f"expected a UUID, got {shown(header[id_key])}")
    created_at = header.get("created_at")
    if created_at is not None:
        created_at = parse_datetime(created_at)
        if created_at is None:
            raise fail(
                "created_at", f"expected a date-time like 2025-01-14T16:05:00Z, got {shown(header['created_at'])}"
            )
    return HeaderFields(name, description, list(tags), scenario_id, created_at)


def parse_datetime(value: Any) -> dt.datetime | None:
    """An ISO date-time as an aware datetime (no offset means UTC), or None if it is not one."""
    if not isinstance(value, str) or not DATETIME_PATTERN.fullmatch(value):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
