"""Analytics built from the canonical tables: the OMOP CDM 5.4 export (:mod:`healthsim_state.analytics.omop`)
and the star schema (:mod:`healthsim_state.analytics.star`)."""
