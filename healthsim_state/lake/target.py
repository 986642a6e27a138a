"""Where the lake is written: a local path or an object-store URI.

A URI (``s3://bucket/lake``, ``gs://``, ``abfss://container@account.dfs.core.windows.net/lake``)
is never treated as a file name. Storage options use the keys of the
``object_store`` crate, which ``deltalake`` takes as they are
(``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AZURE_STORAGE_ACCOUNT_KEY``, ...;
case does not matter). The Parquet files and the manifest are written
through the pyarrow file system of the scheme, which takes the keys of
:data:`PYARROW_KEYS` under its own argument names; any other key is
refused for them. Without options both libraries read the usual
environment variables and credential files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from healthsim_models.errors import LakeError

#: The object-store schemes, and the pyarrow file system each is written through.
SCHEMES: dict[str, type[pafs.FileSystem]] = {
    "s3": pafs.S3FileSystem,
    "s3a": pafs.S3FileSystem,
    "gs": pafs.GcsFileSystem,
    "gcs": pafs.GcsFileSystem,
    "abfs": pafs.AzureFileSystem,
    "abfss": pafs.AzureFileSystem,
    "az": pafs.AzureFileSystem,
}

#: object_store keys and the pyarrow file system arguments they become.
PYARROW_KEYS: dict[type[pafs.FileSystem], dict[str, str]] = {
    pafs.S3FileSystem: {
        "aws_access_key_id": "access_key",
        "aws_secret_access_key": "secret_key",
        "aws_session_token": "session_token",
        "aws_region": "region",
        "aws_endpoint_url": "endpoint_override",
        "aws_endpoint": "endpoint_override",
        "aws_allow_http": "allow_http",
    },
    pafs.GcsFileSystem: {
        "google_service_account_token": "access_token",
        "google_endpoint_url": "endpoint_override",
    },
    pafs.AzureFileSystem: {
        "azure_storage_account_name": "account_name",
        "azure_storage_account_key": "account_key",
        "azure_storage_sas_token": "sas_token",
        "azure_storage_endpoint": "blob_storage_authority",
    },
}

_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class Target:
    """The lake's root: ``uri`` (a URI, or an absolute local path) and its storage options."""

    uri: str
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def scheme(self) -> str | None:
        match = _URI.match(self.uri)
        return match.group(1).lower() if match else None

    def join(self, *parts: str) -> str:
        """The URI (or path) of ``parts`` under the root."""
        return "/".join([self.uri.rstrip("/"), *parts])

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """The pyarrow file system of the target and the root's path in it."""
        scheme = self.scheme
        if scheme is None:
            if self.options:
                raise LakeError(f"{self.uri}: storage options apply to object-store URIs only, not to a local path")
            return pafs.LocalFileSystem(), self.uri
        parts = urlsplit(self.uri)
        system = SCHEMES[scheme]
        keys = PYARROW_KEYS[system]
        unknown = sorted(k for k in self.options if k.lower() not in keys)
        if unknown:
            raise LakeError(
                f"{self.uri}: the storage option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} cannot be given "
                f"to pyarrow's {system.__name__} (Parquet files and the manifest); it takes "
                + ", ".join(sorted(k.upper() for k in keys))
            )
        options: dict[str, object] = {}
        for key, value in self.options.items():
            name = keys[key.lower()]
            options[name] = _BOOLEANS.get(value.lower(), value) if name == "allow_http" else value
        if options.pop("allow_http", False) is True:
            options["scheme"] = "http"
        root = parts.netloc + parts.path
        if system is pafs.AzureFileSystem:
            container, _, host = parts.netloc.partition("@")
            options.setdefault("account_name", host.split(".")[0])
            root = container + parts.path
        try:
            return system(**options), root.rstrip("/")
        except (TypeError, ValueError, OSError) as exc:
            raise LakeError(f"{self.uri}: pyarrow's {system.__name__} refused the storage options ({exc})") from exc


def parse_target(target: str | Path, options: Mapping[str, str] | None = None) -> Target:
    """The target ``target`` names, checked: a known object-store scheme, or a local
    path that is not a file."""
    text = str(target)
    if not text.strip():
        raise LakeError("the lake target is empty: give a directory or an object-store URI (s3://, gs://, abfss://)")
    match = _URI.match(text)
    if match:
        scheme = match.group(1).lower()
        if scheme == "file":
            return parse_target(urlsplit(text).path, options)
        if scheme not in SCHEMES:
            raise LakeError(
                f"{text}: unknown storage scheme {scheme!r}; give a local directory or a URI of "
                + ", ".join(f"{s}://" for s in SCHEMES)
            )
        if not urlsplit(text).netloc:
            raise LakeError(f"{text}: the URI names no bucket or container")
        return Target(text.rstrip("/"), dict(options or {}))
    path = Path(text).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise LakeError(f"{path}: the lake target is a file; give a directory (it is created when missing)")
    return Target(str(path), dict(options or {}))
