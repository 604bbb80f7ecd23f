"""Locks between processes: migrations one at a time, and which ingests are still running.

Two kinds, one per engine, because the engines share nothing else a lock could live in:

- PostgreSQL: advisory locks, keyed by a 64-bit number derived from a name (``run:12``,
  ``migrate``). A session lock is held by a connection and released by the server when that
  connection ends, however it ends (``kill -9`` included), so "held" means "a live process holds
  it", on any host.
- SQLite: ``fcntl.flock`` on a small file next to the catalog file (the catalog is a local file,
  so its folder is local too). The kernel releases it when the process dies.

A running ingest holds its *run lock* (:class:`RunLock`) from before its first lake file is
written until after its transaction has committed or rolled back; ``warehouse check --repair``
removes a file of run R only after :func:`run_is_live` found R's lock free (see
``warehouse.check``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

try:  # POSIX; elsewhere SQLite catalogs get no cross-process locks (see _flock)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def advisory_key(name: str) -> int:
    """A signed 64-bit PostgreSQL advisory-lock key for ``name`` (stable across processes)."""
    return int.from_bytes(hashlib.sha256(f"mlip-warehouse:{name}".encode()).digest()[:8],
                          "big", signed=True)


def sqlite_file(engine: Engine) -> Path | None:
    """The catalog file of a SQLite engine; None for another engine or an in-memory catalog."""
    if engine.dialect.name != "sqlite":
        return None
    db = engine.url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db).resolve()


def lock_dir(engine: Engine) -> Path | None:
    """Where a SQLite catalog's lock files live: ``<catalog>.locks/`` beside it."""
    db = sqlite_file(engine)
    return None if db is None else db.with_name(db.name + ".locks")


@contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


_migrating: set[str] = set()  # catalogs whose migration lock this process holds (re-entry)


@contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Held while the schema is created or migrated: concurrent first uses and concurrent
    ``warehouse db upgrade`` run one after another (the later ones then find it done).
    Re-entrant within a process (a first use's upgrade takes it again)."""
    url = engine.url.render_as_string(hide_password=False)
    if url in _migrating:
        yield
        return
    _migrating.add(url)
    try:
        with _migration_lock(engine):
            yield
    finally:
        _migrating.discard(url)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            key = advisory_key("migrate")
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    folder = lock_dir(engine)
    if folder is None:
        yield
        return
    with _flock(folder / "migrate.lock"):
        yield


class RunLock:
    """Held by a running ingest from its registration to after its commit or rollback.

    It is taken before the run's ``running`` row becomes visible to others (PostgreSQL: for the
    run id drawn from the sequence before the row is inserted; SQLite: inside the transaction
    that inserts it), so a ``running`` row whose lock is free belongs to a process that ended
    without finishing. On PostgreSQL the lock's connection (:attr:`conn`, autocommit) is the
    ingest's own, kept open to the end; the ingest also reads over it (``ingest.writers.bulk``),
    so that an ingest uses two connections, not three.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.conn: Any = None
        self._key: int | None = None
        self._fd: int | None = None
        self._path: Path | None = None

    def connect(self) -> Any:
        """PostgreSQL: the autocommit connection that will hold the lock."""
        self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self.conn

    def hold(self, run_id: int) -> None:
        if self.engine.dialect.name == "postgresql":
            self._key = advisory_key(f"run:{run_id}")
            self.conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            return
        folder = lock_dir(self.engine)
        if folder is None or fcntl is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        self._path = folder / f"run-{run_id}.lock"
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self.conn is not None:
            try:
                if self._key is not None:  # a pooled connection would keep a session lock
                    self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            except Exception:  # noqa: BLE001 - broken: dropped, and the server frees its locks
                self.conn.invalidate()
            self.conn.close()
            self.conn = None
        if self._fd is not None:
            if self._path is not None:
                self._path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def run_is_live(engine: Engine, run_id: int) -> bool | None:
    """True while the process of ingest run ``run_id`` holds its :class:`RunLock`; False once it
    does not; None where this engine offers no way to tell (an in-memory catalog)."""
    if engine.dialect.name == "postgresql":
        key = advisory_key(f"run:{run_id}")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return not got
    folder = lock_dir(engine)
    if folder is None or fcntl is None:
        return None
    path = folder / f"run-{run_id}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False  # removed by its run when it ended (or never made: nothing was written)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    path.unlink(missing_ok=True)  # a killed run's leftover
    return False
