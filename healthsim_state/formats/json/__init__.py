"""The versioned JSON scenario document: :mod:`.document` (its shape),
:mod:`.writer` (export), :mod:`.reader` (import) and :mod:`.stream` (the
incremental JSON reader behind import)."""

from healthsim_state.formats.json.reader import import_scenario
from healthsim_state.formats.json.writer import ExportSummary, entity_json, export_scenario

__all__ = ["ExportSummary", "entity_json", "export_scenario", "import_scenario"]
