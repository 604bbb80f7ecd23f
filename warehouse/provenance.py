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


# Set by the command line: when the work of the next ingest run began. An ingest's transaction
# opens only after its work (an evaluate computes for minutes first), so without this a run's
# recorded time would be its last fraction of a second. Library callers leave it None.
_work_started: datetime | None = None


def command_started() -> None:
    """A command starts: the next ingest run's time counts from now."""
    global _work_started
    _work_started = now()


def run_ended() -> None:
    """An ingest run ended: in a command, the next one's time counts from here (so the runs of one
    command add up to its wall time); outside a command nothing changes."""
    global _work_started
    if _work_started is not None:
        _work_started = now()


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
        started_at=_work_started or now(),
        status="running",
        warehouse_version=__version__,
        library_versions=library_versions(libraries),
        notes=notes,
    )
