"""The warehouse's exception family.

Every user-facing failure is a :class:`WarehouseError` whose message says what went wrong, where
(file and frame or line when there is one) and how to fix it. The CLI prints these without a
traceback and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class WarehouseError(Exception):
    """Base class of every error a user can cause and fix."""

    exit_code = 1


class ConfigError(WarehouseError):
    """Settings (URL, lake path) are missing or unusable."""


class SchemaOutOfDate(WarehouseError):
    """The catalog's schema revision is not the one this code expects."""


class IngestError(WarehouseError):
    """Bad input: names the file and the place (frame, line, key) in its message."""

    def __init__(self, message: str, *, path: str | None = None, where: str | None = None) -> None:
        self.path = path
        self.where = where
        self.message = message  # without the file and place, for a caller that knows better ones
        prefix = ""
        if path is not None:
            prefix = f"{path}"
            if where:
                prefix += f", {where}"
            prefix += ": "
        super().__init__(prefix + message)


class NotFound(WarehouseError):
    """A named thing (model, dataset, ensemble, level of theory) is not in the catalog."""


class NoMatch(WarehouseError):
    """A query's filters matched no rows."""


class LakeError(WarehouseError):
    """A lake file is missing, altered, or cannot be written."""


class ConflictError(WarehouseError):
    """Concurrent writers kept colliding (unique key, deadlock, serialization) past the retries."""

    exit_code = 75  # EX_TEMPFAIL: running the same command again is the fix


EMPTY_WAREHOUSE = ("the warehouse is empty: no dataset is stored yet; `warehouse ingest structures FILE"
                   " --dataset NAME --level-of-theory LEVEL` stores one (or `warehouse demo` builds"
                   " a small real benchmark)")


def missing_file(path: object, expected: str = "a file") -> IngestError:
    """The error for a path that is not a readable file: a folder is named as a folder."""
    from pathlib import Path

    p = Path(str(path))
    if p.is_dir():
        return IngestError(f"this is a folder, where {expected} is expected; name the file inside it",
                           path=str(path))
    return IngestError("no such file", path=str(path))
