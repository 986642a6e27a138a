"""The lake's directory layout, shared by both writers and the manifest.

``<root>/<table>/scenario=<name>/...`` for a canonical table (``patients``,
``claims``, ...), ``<root>/omop/<table>/`` and ``<root>/star/<table>/`` for
the derived tables, ``<root>/_manifest.json`` beside them. The partition value
is the scenario's name with every character but letters, digits, ``-``,
``_``, ``.`` and ``~`` percent-encoded (``a/b`` is ``scenario=a%2Fb``), as
Hive does: Spark, Trino and pyarrow decode it back to the name.
"""

from __future__ import annotations

from urllib.parse import quote

#: The manifest's file name at the lake's root.
MANIFEST = "_manifest.json"

#: Derived table groups: the name ``--include`` takes, and the folder under the root.
DERIVED = ("omop", "star")

#: The formats a lake is written in.
FORMATS = ("parquet", "delta")


def partition_dir(name: str) -> str:
    """The Hive partition directory of the scenario ``name``."""
    return "scenario=" + quote(name, safe="")


def derived_path(group: str, table: str) -> str:
    """The dataset path, under the root, of a derived table."""
    return f"{group}/{table}"
