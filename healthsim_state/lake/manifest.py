"""``_manifest.json``: what the lake holds and where it came from.

Written last by every export, at the lake's root::

    {
      "format": "parquet",                      # or "delta"
      "schema_revision": "0004",                # the store's Alembic revision
      "exported_at": "2026-12-07T09:00:00+00:00",
      "generator": "healthsim-store 0.1.0",
      "partition_column": "scenario",
      "scenarios": {"demo": {"id": "...", "partition": "scenario=demo"}},
      "tables": {
        "patients": {"path": "patients", "entity_type": "patient", "rows": {"demo": 20}, "version": 3},
        "omop/person": {"path": "omop/person", "rows": 20, "version": 1}
      }
    }

``rows`` counts a canonical table's rows per scenario (a derived table's
in all); ``version`` is the Delta table's version after the export (Delta
only). An export of some scenarios keeps the other scenarios' entries of
the manifest it finds.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import pyarrow.fs as pafs

from healthsim_models.errors import LakeError
from healthsim_state.lake.layout import MANIFEST


def generator() -> str:
    try:
        return f"healthsim-store {package_version('healthsim-store')}"
    except PackageNotFoundError:  # a source tree that was never installed
        return "healthsim-store (not installed)"


def read(fs: pafs.FileSystem, root: str) -> dict[str, Any] | None:
    """The manifest at ``root``; None when there is none. A root that holds other
    files but no manifest is refused: the export would mix with something else."""
    info = fs.get_file_info(f"{root}/{MANIFEST}")
    if info.type == pafs.FileType.NotFound:
        if fs.get_file_info(root).type == pafs.FileType.Directory and fs.get_file_info(
            pafs.FileSelector(root, recursive=False)
        ):
            raise LakeError(
                f"{root}: the directory is not empty and holds no {MANIFEST}: it is not a lake written by "
                "healthsim; give an empty or new directory"
            )
        return None
    with fs.open_input_stream(f"{root}/{MANIFEST}") as stream:
        text = stream.read()
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise LakeError(f"{root}/{MANIFEST}: not JSON ({exc}); remove it or give another directory") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tables"), dict):
        raise LakeError(f"{root}/{MANIFEST}: not a lake manifest written by healthsim")
    return manifest


def write(fs: pafs.FileSystem, root: str, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` at ``root`` (replacing the old one in one put)."""
    with fs.open_output_stream(f"{root}/{MANIFEST}") as stream:
        stream.write((json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode("utf-8"))
