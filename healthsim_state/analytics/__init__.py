"""Analytics over the store: the OMOP CDM 5.4 export (:mod:`healthsim_state.analytics.omop`)."""
