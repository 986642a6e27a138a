"""Row checks that tie fields of one entity type together (canonical-models §3, §6).

What a single column's rule cannot say (:mod:`healthsim_models.columns`).
Each check takes a row as the codec encodes it (column -> typed value,
None where absent) and returns the problems it finds as (field, reason)
pairs; the registry attaches checks to their types (``EntityType.checks``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

#: A check of one encoded row: its problems as (field, reason) pairs.
RowCheck = Callable[[Mapping[str, Any]], Sequence[tuple[str, str]]]

_NONE: tuple[tuple[str, str], ...] = ()


def person_dates(row: Mapping[str, Any]) -> Sequence[tuple[str, str]]:
    """A person's ``death_date`` needs ``deceased: true`` and is not before ``birth_date``."""
    death = row["death_date"]
    if death is None:
        return _NONE
    problems = []
    if not row["deceased"]:
        problems.append(("death_date", "given without deceased: true"))
    if row["birth_date"] is not None and death < row["birth_date"]:
        problems.append(("death_date", f"{death} is before birth_date {row['birth_date']}"))
    return problems


def patient_or_member(row: Mapping[str, Any]) -> Sequence[tuple[str, str]]:
    """A prescription names its patient, its member, or both (§12.1)."""
    if row["patient_mrn"] is None and row["member_id"] is None:
        return [("patient_mrn", "a prescription needs patient_mrn or member_id (or both)")]
    return _NONE


def refills_within_authorized(row: Mapping[str, Any]) -> Sequence[tuple[str, str]]:
    """A prescription has no more refills left than were authorized."""
    authorized, remaining = row["refills_authorized"], row["refills_remaining"]
    if authorized is not None and remaining is not None and remaining > authorized:
        return [("refills_remaining", f"{remaining} is more than refills_authorized {authorized}")]
    return _NONE


def provider_named(row: Mapping[str, Any]) -> Sequence[tuple[str, str]]:
    """A claim names its rendering provider by NPI, by practitioner, or both."""
    if row["provider_npi"] is None and row["practitioner_id"] is None:
        return [("provider_npi", "a claim needs provider_npi or practitioner_id (or both)")]
    return _NONE
