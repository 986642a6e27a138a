"""Checks on encoded rows that go beyond one field's type (canonical-models §3-§8).

:func:`check_row` applies :mod:`healthsim_state.rules` (enums, patterns,
ranges, end-not-before-start, cross-field person rules) to a row produced by
:func:`healthsim_state.serialization.encode` and returns (field, reason)
pairs. Type errors were already reported by ``encode``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from healthsim_state import rules
from healthsim_state.fields import Layout


def check_row(lay: Layout, row: dict[str, Any]) -> list[tuple[str, str]]:
    type_name = lay.entity.name
    columns = lay.column_of
    problems: list[tuple[str, str]] = []

    for name, allowed in rules.ENUMS.get(type_name, {}).items():
        value = row[columns[name]]
        if value is not None and value not in allowed:
            problems.append((name, f"{value!r} is not one of {', '.join(sorted(allowed))}"))

    for name, pattern in rules.PATTERNS.get(type_name, {}).items():
        value = row[columns[name]]
        if isinstance(value, str) and not pattern.fullmatch(value):
            problems.append((name, f"{value!r} does not match the pattern {pattern.pattern}"))

    for name, (low, high) in rules.RANGES.get(type_name, {}).items():
        value = row[columns[name]]
        if value is None:
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
            problems.append((name, f"{value} is outside {span}"))

    for start, end in rules.ORDERINGS.get(type_name, ()):
        a, b = row[columns[start]], row[columns[end]]
        if a is not None and b is not None and b < a:
            problems.append((end, f"{_text(b)} is before {start} {_text(a)}"))

    if type_name == "adverse_event":
        for item in row["aesae_criteria"] or ():
            if item not in rules.AE_SAE_CRITERIA:
                problems.append(("aesae_criteria", f"{item!r} is not one of {', '.join(sorted(rules.AE_SAE_CRITERIA))}"))

    if "death_date" in row:
        death = row["death_date"]
        if death is not None and not row["deceased"]:
            problems.append(("death_date", "given without deceased: true"))
        if death is not None and row["birth_date"] is not None and death < row["birth_date"]:
            problems.append(("death_date", f"{death} is before birth_date {row['birth_date']}"))

    if type_name == "prescription":
        if row["patient_mrn"] is None and row["member_id"] is None:
            problems.append(("patient_mrn", "a prescription needs patient_mrn or member_id (or both)"))
        authorized, remaining = row["refills_authorized"], row["refills_remaining"]
        if authorized is not None and remaining is not None and remaining > authorized:
            problems.append(("refills_remaining", f"{remaining} is more than refills_authorized {authorized}"))
    return problems


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date | dt.datetime) else str(value)
