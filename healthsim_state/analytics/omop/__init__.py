"""The OMOP CDM 5.4 export: ``build_omop`` writes it, ``omop_summary`` reads it.

See docs/analytics.md for what each OMOP table and field comes from.
"""

from healthsim_state.analytics.omop.build import OmopSummary, build_omop
from healthsim_state.analytics.omop.schema import DEFAULT_SCHEMA, create_schema
from healthsim_state.analytics.omop.summary import omop_summary

__all__ = ["DEFAULT_SCHEMA", "OmopSummary", "build_omop", "create_schema", "omop_summary"]
