"""The lake: the store's tables as Parquet or Delta datasets for Spark, Trino
and DuckDB (docs/scale.md).

``schemas`` (Arrow types from the models), ``source`` (rows read from the
store in record batches), ``target`` (a path or an object-store URI),
``parquet`` and ``delta`` (the two writers), ``manifest`` (``_manifest.json``)
and ``export`` (:func:`export_lake`, which ties them together).
"""

from healthsim_state.lake.export import FORMATS, INCLUDES, LakeSummary, export_lake

__all__ = ["FORMATS", "INCLUDES", "LakeSummary", "export_lake"]
