"""Analytics built from the canonical tables: the OMOP CDM export and the star schema."""
