"""Ctrl-C and SIGTERM delivered between database statements, never inside one.

An interrupt raised inside a driver call (sqlite3's executemany, psycopg's COPY) leaves that
connection invalidated but not closed; on SQLite its half-run statement keeps the write lock, so
the rollback and the failed-run row behind it would wait out the busy timeout and be lost. The
CLI's signal handlers call :func:`interrupt`, which raises at once outside a :func:`critical`
block and at its end inside one; the loader wraps each batch's database work in one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_pending: BaseException | None = None


def interrupt(exc: BaseException) -> None:
    """Raise ``exc`` now, or when the current critical block ends."""
    global _pending
    if _depth:
        _pending = exc
        return
    raise exc


@contextmanager
def critical() -> Iterator[None]:
    """A block that an interrupt does not cut: it is raised when the block ends."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            exc, _pending = _pending, None
            raise exc
