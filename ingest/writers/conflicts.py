"""Concurrent ingests that collide are run again, a bounded number of times.

Names (levels of theory, datasets, models, ensembles) are get-or-create statements that cannot
collide (``warehouse.db.insert_if_absent``). The rows an ingest writes in bulk (structures by
hash, dataset members, references, predictions) are not: on PostgreSQL two ingests that write the
same new structure each look it up, find it absent and send it; the second one's COPY then waits
for the first's transaction and fails with a unique violation once it commits (or the two
deadlock, each waiting for a row of the other). Checking row by row with ``ON CONFLICT`` would cost
the bulk path its COPY; instead the whole ingest is undone and run again, and the new attempt
finds the other's rows "already present". Ingests of the same file never get that far: they
queue on an advisory lock keyed by the file's sha256 (``ingest.loader``), so a retry is needed
only where different files share structures. On SQLite an ingest holds the one write lock for its
whole transaction, so ingests queue instead of colliding; a lock wait that outlasts the busy
timeout ("database is locked") is retried as well.

Each attempt is a complete ingest (its own run row, transaction and lake files); a failed attempt
is rolled back like any failed ingest before the next starts, after a random pause that grows
with the attempt (so colliding writers do not collide again in step).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from warehouse.errors import ConflictError

T = TypeVar("T")

ATTEMPTS = 6
# PostgreSQL SQLSTATEs: unique_violation, deadlock_detected, serialization_failure,
# lock_not_available
RETRIED_STATES = {"23505": "unique key", "40P01": "deadlock", "40001": "serialization failure",
                  "55P03": "lock not available"}


def conflict_of(exc: BaseException) -> str | None:
    """What kind of collision with a concurrent writer ``exc`` is, or None if it is none."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        for obj in (e, getattr(e, "orig", None)):
            state = getattr(obj, "sqlstate", None)
            if state in RETRIED_STATES:
                return f"{RETRIED_STATES[state]}: {str(obj).splitlines()[0]}"
            if type(obj).__module__ == "sqlite3" and obj is not None:
                text = str(obj)
                if "database is locked" in text or "UNIQUE constraint failed" in text:
                    return text
        e = e.__cause__ or e.__context__
    return None


def with_retries(attempt: Callable[[int], T], *, what: str) -> T:
    """``attempt(n)`` for n = 0, 1, ... until it does not collide with a concurrent writer."""
    for n in range(ATTEMPTS):
        try:
            return attempt(n)
        except Exception as exc:
            reason = conflict_of(exc)
            if reason is None:
                raise
            if n == ATTEMPTS - 1:
                raise ConflictError(
                    f"{what}: gave up after {ATTEMPTS} attempts, each undone because a concurrent"
                    f" ingest wrote the same rows ({reason}); nothing was kept, run it again"
                ) from exc
            time.sleep(random.uniform(0.05, 0.2) * 2 ** n)
    raise AssertionError("unreachable")
