"""Who ingested what, when, with which versions of which libraries."""

from __future__ import annotations

import getpass
import socket
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

from warehouse._version import __version__
from warehouse.models import IngestRun

DEFAULT_LIBRARIES = ("ase", "numpy", "pyarrow", "sqlalchemy", "pandas", "extxyz")


def library_versions(names: tuple[str, ...] = DEFAULT_LIBRARIES) -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry inside some containers
        return None


def now() -> datetime:
    return datetime.now(UTC)


def new_run(
    kind: str,
    *,
    source_uri: str | None = None,
    source_sha256: str | None = None,
    argv: list[str] | None = None,
    notes: str | None = None,
    libraries: tuple[str, ...] = DEFAULT_LIBRARIES,
) -> IngestRun:
    """A fresh ``ingest_runs`` row in status ``running`` (not yet added to a session)."""
    return IngestRun(
        kind=kind,
        source_uri=source_uri,
        source_sha256=source_sha256,
        argv=list(sys.argv if argv is None else argv),
        user=_user(),
        host=socket.gethostname(),
        started_at=now(),
        status="running",
        warehouse_version=__version__,
        library_versions=library_versions(libraries),
        notes=notes,
    )
