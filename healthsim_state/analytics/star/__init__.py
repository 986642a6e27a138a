"""The star schema: dimensions and facts over every product, built on request into the ``analytics`` schema.

:func:`build_star` rebuilds the rows of the scenarios it names; the tables
are declared in :mod:`~healthsim_state.analytics.star.tables`, their SQL is
in :mod:`~healthsim_state.analytics.star.sql`, and docs/analytics.md
describes grains, keys and rules.
"""

from healthsim_state.analytics.star.build import DEFAULT_SCHEMA, StarSummary, build_star, check_schema_name

__all__ = ["DEFAULT_SCHEMA", "StarSummary", "build_star", "check_schema_name"]
