"""The canonical entity tables of canonical-models.md, one module per product."""

from healthsim_models.canonical.membersim import Claim, ClaimLine, Coverage, Member, Payer
from healthsim_models.canonical.networksim import Organization, Practitioner
from healthsim_models.canonical.patientsim import (
    Allergy,
    CarePlan,
    ClinicalNote,
    Device,
    Diagnosis,
    Encounter,
    ImagingStudy,
    Immunization,
    LabResult,
    Medication,
    Observation,
    Order,
    Patient,
    Procedure,
    Supply,
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
    "Allergy",
    "CarePlan",
    "Claim",
    "ClaimLine",
    "ClinicalNote",
    "Coverage",
    "Device",
    "Diagnosis",
    "Encounter",
    "Exposure",
    "ImagingStudy",
    "Immunization",
    "LabResult",
    "Medication",
    "Member",
    "Observation",
    "Order",
    "Organization",
    "Patient",
    "Payer",
    "PharmacyClaim",
    "Practitioner",
    "Prescription",
    "Procedure",
    "Subject",
    "Supply",
    "TrialVisit",
    "VitalSign",
]
