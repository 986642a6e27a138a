"""Checks that go beyond one field's type (canonical-models §3-§8).

:func:`check_row` applies the value rules of the layout's fields (lengths of
indexed text, enums, patterns, ranges, end-not-before-start, array item
values) and then the entity type's own row checks (``EntityType.checks``)
to a row produced by :func:`healthsim_state.codec.document.encode`, and
returns (field, reason) pairs. Type errors were already reported by
``encode``. :func:`scenario_problems` and :func:`tag_problem` check a
scenario's own fields (name, description, tags, ``extra``) the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from healthsim_models.errors import Problem, ValidationError
from healthsim_models.vocab import INDEXED_TEXT_MAX_CHARS
from healthsim_state.codec.layout import Layout
from healthsim_state.codec.values import json_problem, shown, text_problem


def too_long(text: str, limit: int = INDEXED_TEXT_MAX_CHARS) -> str | None:
    """Why ``text`` is too long for an indexed text field, or None."""
    if len(text) <= limit:
        return None
    return (
        f"is {len(text):,} characters long; an indexed text field holds at most {limit:,} "
        "(PostgreSQL cannot index longer values)"
    )


def check_row(lay: Layout, row: dict[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []

    for name, column, limit in lay.limited:
        value = row[column]
        if value.__class__ is str and len(value) > limit:
            problems.append((name, too_long(value, limit) or ""))

    for name, column, allowed, listed in lay.enums:
        value = row[column]
        if value is not None and value not in allowed:
            problems.append((name, f"{shown(value)} is not one of {listed}"))

    for name, column, pattern in lay.patterns:
        value = row[column]
        if isinstance(value, str) and not pattern.fullmatch(value):
            problems.append((name, f"{shown(value)} does not match the pattern {pattern.pattern}"))

    for name, column, low, high in lay.ranges:
        value = row[column]
        if value is None:
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
            problems.append((name, f"{value} is outside {span}"))

    for name, column, start, start_column in lay.orderings:
        a, b = row[start_column], row[column]
        if a is not None and b is not None and b < a:
            problems.append((name, f"{_text(b)} is before {start} {_text(a)}"))

    for name, column, allowed, listed in lay.item_enums:
        for item in row[column] or ():
            if item not in allowed:
                problems.append((name, f"{shown(item)} is not one of {listed}"))

    for check in lay.entity.checks:
        problems.extend(check(row))
    return problems


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else str(value)


def scenario_problems(name: Any, description: Any, extra: Any) -> list[Problem]:
    """What is wrong with a scenario's name, description and ``extra`` (its tags:
    :func:`tag_problem`), as problems of the entity type "scenario"."""
    found: list[tuple[str, str]] = []
    if not isinstance(name, str) or not name.strip():
        found.append(("name", f"required, a non-empty string, got {shown(name)}"))
    elif (reason := text_problem(name) or too_long(name)) is not None:
        found.append(("name", reason))
    if description is not None:
        if not isinstance(description, str):
            found.append(
                ("description", f"expected a string or null, got {type(description).__name__} {shown(description)}")
            )
        elif (reason := text_problem(description)) is not None:
            found.append(("description", reason))
    if extra is not None:
        if not isinstance(extra, Mapping):
            found.append(("extra", f"expected an object (a mapping), got {type(extra).__name__} {shown(extra)}"))
        elif (problem := json_problem(dict(extra), "extra")) is not None:
            found.append(problem)
    return [Problem("scenario", None, None, field, reason) for field, reason in found]


def tag_problem(tag: Any) -> str | None:
    """Why ``tag`` cannot be a scenario tag, or None."""
    if not isinstance(tag, str) or not tag.strip():
        return f"a tag must be a non-empty string, got {shown(tag)}"
    reason = text_problem(tag) or too_long(tag)
    return None if reason is None else f"the tag {shown(tag)} {reason}"


def clean_tags(tags: Iterable[str] | None) -> list[str]:
    """A scenario's tags as a list, each once, in the order given; a bad tag is a ``ValidationError``."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    if isinstance(tags, Mapping | bytes) or not isinstance(tags, Iterable):
        raise ValidationError(
            [Problem("scenario", None, None, "tags", f"expected a list of strings, got {type(tags).__name__}")]
        )
    cleaned: list[str] = []
    for tag in tags:
        reason = tag_problem(tag)
        if reason is not None:
            raise ValidationError([Problem("scenario", None, None, "tags", reason)])
        if tag not in cleaned:
            cleaned.append(tag)
    return cleaned
