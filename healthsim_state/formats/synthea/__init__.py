"""Synthea CSV import: a folder of Synthea's CSV output saved as a scenario (docs/synthea.md)."""

from healthsim_state.formats.synthea.importer import SyntheaSummary, import_synthea

__all__ = ["SyntheaSummary", "import_synthea"]
