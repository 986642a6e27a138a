"""The lake: the store's tables as Parquet or Delta datasets for Spark, Trino
and DuckDB (docs/scale.md).

``schemas`` (Arrow types from the models), ``source`` (rows read from the
store in record batches), ``target`` (a path or an object-store URI),
``parquet`` and ``delta`` (the two writers), ``manifest`` (``_manifest.json``)
and ``export`` (:func:`export_lake`, which ties them together).
"""

from __future__ import annotations

from typing import Any

__all__ = ["FORMATS", "INCLUDES", "LakeSummary", "export_lake"]


def __getattr__(name: str) -> Any:
    # Imported on first use: pyarrow's dataset and compute modules cost every
    # `healthsim` command 0.1 s, and only the lake export needs them.
    if name in __all__:
        from healthsim_state.lake import export

        return getattr(export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
