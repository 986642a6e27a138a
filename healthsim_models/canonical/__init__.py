"""The 18 canonical entity tables of canonical-models.md, one module per product."""

from healthsim_models.canonical.membersim import Claim, ClaimLine, Member
from healthsim_models.canonical.patientsim import (
    ClinicalNote,
    Diagnosis,
    Encounter,
    LabResult,
    Medication,
    Order,
    Patient,
    Procedure,
    VitalSign,
)
from healthsim_models.canonical.rxmembersim import PharmacyClaim, Prescription
from healthsim_models.canonical.trialsim import (
    AdverseEvent,
    Exposure,
    Subject,
    TrialVisit,
)

__all__ = [
    "AdverseEvent",
    "Claim",
    "ClaimLine",
    "ClinicalNote",
    "Diagnosis",
    "Encounter",
    "Exposure",
    "LabResult",
    "Medication",
    "Member",
    "Order",
    "Patient",
    "PharmacyClaim",
    "Prescription",
    "Procedure",
    "Subject",
    "TrialVisit",
    "VitalSign",
]
