"""Bulk writes for the loader: ids allocated up front, rows sent in one round trip.

Per-structure rows (structures, their elements, dataset members, references) are many and
small, so the ORM's unit of work (and even INSERT ... RETURNING) dominates an ingest. Instead the
loader allocates the ids itself, then writes each table's rows with PostgreSQL's COPY (psycopg 3)
or one executemany on SQLite. Both run on the ingest's own connection, inside its transaction.

Allocating ids: on PostgreSQL from the table's sequence (``nextval`` in bulk, safe under
concurrent ingests); on SQLite as max(id)+1.., safe because an ingest holds SQLite's single write
lock from its first statement (the ``ingest_runs`` row) to its commit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Table, event, func, insert, select, text
from sqlalchemy.engine import Connection

from warehouse.describe import JsonText


def allocate_ids(conn: Connection, table: Table, n: int) -> np.ndarray:
    """``n`` fresh primary keys of ``table`` (see the module notes on concurrency)."""
    if n == 0:
        return np.empty(0, dtype=np.int64)
    if conn.dialect.name == "postgresql":
        ids = conn.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": n},
        ).scalars().all()
        return np.sort(np.array(ids, dtype=np.int64))
    start = conn.execute(select(func.max(table.c.id))).scalar() or 0
    return np.arange(start + 1, start + 1 + n, dtype=np.int64)


def bulk_insert(conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple]) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) into ``table`` in one round trip."""
    if rows:
        _bulk_insert(conn, table, columns, rows)


def _bulk_insert(conn: Connection, table: Table, columns: Sequence[str], rows: list[tuple]) -> None:
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(c) for c in columns)
    json_cols = [i for i, c in enumerate(columns) if table.c[c].type.__class__.__name__ == "JSON"]
    if conn.dialect.name == "sqlite":
        # the DB-API's executemany with tuples: SQLAlchemy's per-row parameter processing costs
        # more than SQLite's insert itself
        if json_cols:
            rows = [_encode_json(row, json_cols) for row in rows]
        marks = ", ".join("?" * len(columns))
        conn.exec_driver_sql(f"INSERT INTO {prep.format_table(table)} ({cols}) VALUES ({marks})", rows)
        return
    if conn.dialect.name == "postgresql":
        _copy_rows(conn.connection.driver_connection, f"COPY {prep.format_table(table)} ({cols}) FROM STDIN",
                   rows, json_cols)
        return
    conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


def _copy_rows(raw: Any, sql: str, rows: list[tuple], json_cols: list[int]) -> None:
    with raw.cursor() as cur, cur.copy(sql) as cp:
        for row in rows:
            cp.write_row(_encode_json(row, json_cols) if json_cols else row)


class BackgroundWriter:
    """An ingest's writes on PostgreSQL, run in order by a worker thread on its connection.

    On PostgreSQL most of a bulk insert's time is the server's (foreign-key checks and index
    upkeep, ~9 µs per checked key and row), and psycopg waits for it outside the GIL. Sent from
    a worker, that server time runs beside this thread's work (building the next rows and lake
    tables, receiving the next batch) instead of after it. The loader reads what it needs
    (committed rows, new ids) over a second connection, so it need not wait for the worker.

    Order is kept: the worker runs its jobs (COPYs, statements) in submission order, and every
    other statement on the connection, and its commit, first waits until the worker is done
    (SQLAlchemy ``before_cursor_execute`` and ``commit`` hooks) and raises the first job's
    error, if any. :meth:`wait` does the same on demand; :meth:`close` drops what has not
    started, waits for what has, ignores errors (it is for a rollback) and removes the hooks.
    At most ``max_pending`` jobs wait at a time (memory stays bounded).
    """

    def __init__(self, conn: Connection, *, max_pending: int = 16) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._conn = conn
        self._raw = conn.connection.driver_connection
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warehouse-writer")
        self._pending: list[Any] = []
        self._max_pending = max_pending
        event.listen(conn, "before_cursor_execute", self._before_statement)
        event.listen(conn, "commit", self._before_commit)

    def copy(self, table: Table, columns: Sequence[str], rows: list[tuple]) -> None:
        """COPY ``rows`` (tuples in ``columns`` order) into ``table``."""
        if not rows:
            return
        prep = self._conn.dialect.identifier_preparer
        cols = ", ".join(prep.quote(c) for c in columns)
        json_cols = [i for i, c in enumerate(columns) if table.c[c].type.__class__.__name__ == "JSON"]
        self._submit(_copy_rows, self._raw, f"COPY {prep.format_table(table)} ({cols}) FROM STDIN",
                     rows, json_cols)

    def execute(self, sql: str, params: Sequence[Any]) -> None:
        """Run one statement (psycopg placeholders, ``%s``)."""
        self._submit(_execute, self._raw, sql, params)

    def _submit(self, fn, *args: Any) -> None:
        # bound the queue: wait for the oldest jobs; a failed one stays for wait() to raise
        while len(self._pending) >= self._max_pending and self._pending[0].exception() is None:
            self._pending.pop(0)
        self._pending.append(self._pool.submit(fn, *args))

    def wait(self) -> None:
        """Block until every submitted job ran; raise the first one's error."""
        pending, self._pending = self._pending, []
        first: BaseException | None = None
        for future in pending:
            exc = future.exception()
            if exc is not None and first is None:
                first = exc
        if first is not None:
            raise first

    def _before_statement(self, *_args: Any) -> None:
        if self._pending:
            self.wait()

    def _before_commit(self, *_args: Any) -> None:
        self.wait()

    def close(self) -> None:
        for future in self._pending:
            future.cancel()  # what has not started never will: the transaction is undone
        try:
            self.wait()
        except BaseException:  # noqa: BLE001 - closing for a rollback: the error is known
            pass
        finally:
            self._pool.shutdown(wait=True)
            event.remove(self._conn, "before_cursor_execute", self._before_statement)
            event.remove(self._conn, "commit", self._before_commit)


def _execute(raw: Any, sql: str, params: Sequence[Any]) -> None:
    with raw.cursor() as cur:
        cur.execute(sql, params)


def _encode_json(row: tuple, json_cols: list[int]) -> tuple:
    row = list(row)
    for i in json_cols:
        v = row[i]
        if v is not None and not isinstance(v, JsonText):
            row[i] = json.dumps(v)
    return tuple(row)


def as_float(value: Any) -> float | None:
    return None if value is None else float(value)
