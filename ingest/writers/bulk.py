"""Bulk writes for the loader: ids allocated up front, rows sent in one round trip.

Per-structure rows (structures, their elements, dataset members, references) are many and
small, so the ORM's unit of work (and even INSERT ... RETURNING) dominates an ingest. Instead the
loader allocates the ids itself, then writes each table's rows with PostgreSQL's COPY (psycopg 3)
or one executemany on SQLite. Both run on the ingest's own connection, inside its transaction.

Allocating ids: on PostgreSQL from the table's sequence (``nextval`` in bulk, safe under
concurrent ingests); on SQLite as max(id)+1.., safe because an ingest holds SQLite's single write
lock from its first statement (the ``ingest_runs`` row) to its commit.

Foreign keys of bulk rows on PostgreSQL, checked once per ingest instead of once per row and key.
PostgreSQL checks a foreign key with a trigger per inserted row and key (a look-up of the parent
row and a ``FOR KEY SHARE`` lock on it): ~4.6 µs per key and row, measured on a structures batch,
70 % of the server's work in an ingest, for keys that are mostly one value per batch (the run, the
dataset, the level of theory, the lake file). Where the session may (:func:`key_check_mode`),
the background writer sends the bulk tables' COPYs with triggers off (``SET LOCAL
session_replication_role = replica``, for that COPY only), collects the distinct key values that
those rows carry, and before commit checks them all with one statement (:meth:`BackgroundWriter.
check_keys`): every value must name an existing parent row, or the ingest fails as the trigger
would have made it fail (COPY stores exactly the values it was sent, so checking the values is
checking the rows). The triggers' locks are kept where they matter: the parents that may predate
the ingest (its dataset, its level of theory, structures shared with earlier ingests) are locked
``FOR KEY SHARE`` by the loader before its rows are sent, so none can be deleted before it
commits; the other parents (its run, its lake files, its new structures) are its own, invisible
to other sessions until it commits. This mode is used only when the role may set that parameter
(a superuser, or PostgreSQL 15's ``GRANT SET ON PARAMETER``) and the tables carry no trigger or
rule of their own (replica mode would silence those too); otherwise, or with
``WAREHOUSE_PG_KEY_CHECKS=triggers``, the triggers check every row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import Table, event, func, insert, select, text
from sqlalchemy.engine import Connection

from warehouse.describe import JsonText
from warehouse.errors import IngestError

# "deferred" (checked before commit where allowed, see the module notes) or "triggers" (per row)
KEY_CHECKS = os.environ.get("WAREHOUSE_PG_KEY_CHECKS", "deferred")


def key_check_mode(conn: Connection, tables: Sequence[Table]) -> str:
    """``deferred`` if this PostgreSQL session may COPY into ``tables`` with triggers off and
    check their foreign keys before commit (see the module notes), else ``triggers``."""
    if KEY_CHECKS != "deferred" or conn.dialect.name != "postgresql":
        return "triggers"
    may_set = "r.rolsuper"
    if (conn.dialect.server_version_info or (0,)) >= (15,):
        may_set += " OR has_parameter_privilege('session_replication_role', 'SET')"
    names = [t.name for t in tables]
    allowed, own = conn.execute(text(
        f"SELECT ({may_set}) AS allowed,"
        " (SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        "  WHERE c.relname = ANY(:names) AND pg_table_is_visible(c.oid) AND NOT t.tgisinternal)"
        " + (SELECT count(*) FROM pg_rewrite w JOIN pg_class c ON c.oid = w.ev_class"
        "  WHERE c.relname = ANY(:names) AND pg_table_is_visible(c.oid)) AS own"
        " FROM pg_roles r WHERE r.rolname = current_user"), {"names": names}).one()
    return "deferred" if allowed and own == 0 else "triggers"


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


def _copy_rows(raw: Any, sql: str, rows: list[tuple], json_cols: list[int],
               triggers: bool = True) -> None:
    with raw.cursor() as cur:
        if not triggers:
            cur.execute("SET LOCAL session_replication_role = replica")
        with cur.copy(sql) as cp:
            for row in rows:
                cp.write_row(_encode_json(row, json_cols) if json_cols else row)
        if not triggers:
            cur.execute("SET LOCAL session_replication_role = origin")


def note_keys(keys: dict[tuple[str, str], tuple[set[int], set[str]]], table: Table,
              columns: Sequence[str], rows: list[tuple]) -> None:
    """Add the foreign-key values of ``rows`` (``table``'s, in ``columns`` order) to ``keys``:
    (parent table, its key) -> (values, the columns that hold them), for :func:`_check_keys`."""
    for fk in table.foreign_keys:
        # every key column is sent: one left to its default would escape the check
        i = list(columns).index(fk.parent.name)
        values, users = keys.setdefault((fk.column.table.name, fk.column.name), (set(), set()))
        values.update(map(itemgetter(i), rows))
        values.discard(None)
        users.add(f"{table.name}.{fk.parent.name}")


def _check_keys(raw: Any, keys: dict[tuple[str, str], tuple[set[int], set[str]]]) -> None:
    """Every value in ``keys`` ((parent table, its key column) -> (values, the columns that hold
    them)) names a parent row."""
    order = sorted(keys)
    parts = [f'(SELECT count(*) FROM "{t}" WHERE "{c}" = ANY(%s::bigint[]))' for t, c in order]
    values = [sorted(keys[k][0]) for k in order]
    with raw.cursor() as cur:
        found = cur.execute(f"SELECT {', '.join(parts)}", values).fetchone()
        for (table, col), vals, n in zip(order, values, found, strict=True):
            if n == len(vals):
                continue
            missing = [v for (v,) in cur.execute(
                f'SELECT v FROM unnest(%s::bigint[]) v WHERE NOT EXISTS'
                f' (SELECT 1 FROM "{table}" p WHERE p."{col}" = v) ORDER BY v LIMIT 5', (vals,))]
            users = " or ".join(sorted(keys[table, col][1]))
            raise IngestError(
                f"{len(vals) - n} of the {table} rows that this ingest's rows point at do not"
                f" exist (deleted while it ran?): {users} {', '.join(map(str, missing))}")


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
        # (parent table, its key) -> (values sent, the columns that sent them): see check_keys
        self._keys: dict[tuple[str, str], tuple[set[int], set[str]]] = {}
        event.listen(conn, "before_cursor_execute", self._before_statement)
        event.listen(conn, "commit", self._before_commit)

    def copy(self, table: Table, columns: Sequence[str], rows: list[tuple], *,
             check_keys_later: bool = False) -> None:
        """COPY ``rows`` (tuples in ``columns`` order) into ``table``.

        With ``check_keys_later``, the COPY runs with triggers off and the rows' foreign-key
        values are kept for :meth:`check_keys` (see the module notes); the caller has made sure
        that this is allowed (:func:`key_check_mode`) and locks the parents that predate it.
        """
        if not rows:
            return
        if check_keys_later:
            note_keys(self._keys, table, columns, rows)
        prep = self._conn.dialect.identifier_preparer
        cols = ", ".join(prep.quote(c) for c in columns)
        json_cols = [i for i, c in enumerate(columns) if table.c[c].type.__class__.__name__ == "JSON"]
        self._submit(_copy_rows, self._raw, f"COPY {prep.format_table(table)} ({cols}) FROM STDIN",
                     rows, json_cols, not check_keys_later)

    def check_keys(self) -> None:
        """Check the foreign-key values of every COPY sent with ``check_keys_later`` so far, in
        one statement after them; a missing parent is raised by :meth:`wait`."""
        if self._keys:
            keys, self._keys = self._keys, {}
            self._submit(_check_keys, self._raw, keys)

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> None:
        """Run one statement (psycopg placeholders, ``%s`` or ``%(name)s``)."""
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


def _execute(raw: Any, sql: str, params: Sequence[Any] | dict[str, Any]) -> None:
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


# Keep IN (...) lists well under SQLite's 32,766 bound-parameter limit.
IN_CHUNK = 900
# Ids taken from a sequence at a time on PostgreSQL (BulkPath.new_ids): a few batches' worth.
ID_BLOCK = 4096
ID_BLOCKS = {"lake_files": 32}


def chunks(items: list[Any], size: int = IN_CHUNK):
    for i in range(0, len(items), size):
        yield items[i : i + size]


class BulkPath:
    """One ingest's batch path: where its bulk rows go, where it reads, where its ids come from.

    SQLite: rows are inserted at once on the ingest's connection; ids are max(id)+1.. (the
    ingest holds the write lock). PostgreSQL, once the first batch comes (:meth:`start`): the
    rows go through a :class:`BackgroundWriter` on the ingest's connection; what the loader must
    know (committed rows, new ids) is read over a second, autocommit connection, so reading
    never waits for the writes; ids come in blocks from the tables' sequences; foreign keys are
    checked before commit where the role may (:func:`key_check_mode`), with the parents that
    may predate the ingest locked ``FOR KEY SHARE`` (:meth:`lock_parents`).
    """

    def __init__(self, session: Any, engine: Any, tables: Sequence[Table], *,
                 side: Any = None) -> None:
        self.s = session
        self.engine = engine
        self.tables = tables  # what the writer COPYs: checked for triggers of their own
        self.writer: BackgroundWriter | None = None
        self.side: Any = None
        # an autocommit connection the ingest holds anyway (its run lock's): used as the side
        # connection instead of opening one, and left open by stop()
        self._given_side = side
        self.key_checks = "triggers"  # or "deferred": see the module notes on foreign keys
        self._locked: set[tuple[str, int]] = set()  # parents locked FOR KEY SHARE ("deferred")
        self._id_pool: dict[str, list[int]] = {}  # table -> ids taken from its sequence, unused

    def start(self) -> None:
        if self.writer is None and self.s.bind.dialect.name == "postgresql":
            self.side = self._given_side or self.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT")
            self.writer = BackgroundWriter(self.s.connection())
            self.key_checks = key_check_mode(self.side, self.tables)

    def read_conn(self) -> Any:
        """Where the batch path reads committed rows and allocates ids."""
        return self.side if self.side is not None else self.s.connection()

    def new_ids(self, table: Table, n: int) -> list[int]:
        """``n`` fresh ids of ``table``. With a side connection (PostgreSQL), drawn from blocks
        taken from the table's sequence (a batch then needs no round trip for its ids; the
        unused rest of a block is a gap in the ids, as a rolled-back ingest leaves one)."""
        if self.side is None:
            return allocate_ids(self.read_conn(), table, n).tolist()
        pool = self._id_pool.setdefault(table.name, [])
        if len(pool) < n:
            block = max(n - len(pool), ID_BLOCKS.get(table.name, ID_BLOCK))
            pool += allocate_ids(self.side, table, block).tolist()
        out = pool[:n]
        del pool[:n]
        return out

    def rows(self, table: Table, columns: Sequence[str], rows: list[tuple]) -> None:
        """Insert ``rows``: by the background writer on PostgreSQL (their foreign keys checked
        before commit instead of per row, where allowed), at once elsewhere."""
        if self.writer is not None:
            self.writer.copy(table, columns, rows, check_keys_later=self.key_checks == "deferred")
        else:
            bulk_insert(self.s.connection(), table, columns, rows)

    def lock_parents(self, parents: Sequence[tuple[str, int]], structures: set[int]) -> None:
        """With deferred key checks: lock the parent rows that may predate this ingest (its
        dataset and level of theory as (table, id), and stored ``structures``) ``FOR KEY SHARE``,
        as the foreign-key triggers would, so that none is deleted before it commits."""
        if self.key_checks != "deferred":
            return
        for table, key in parents:
            if (table, key) not in self._locked:
                self._locked.add((table, key))
                self.writer.execute(f'SELECT 1 FROM "{table}" WHERE id = %s FOR KEY SHARE', (key,))
        if structures:
            self.writer.execute("SELECT 1 FROM structures WHERE id = ANY(%s::bigint[]) FOR KEY SHARE",
                                (sorted(structures),))

    def lookup_hashes(self, hashes: list[str]) -> dict[str, int]:
        """Stored structure id of each of ``hashes`` that is stored (committed), in one or a few
        statements. The one look-up written per engine, for speed: PostgreSQL plans IN (...) with
        thousands of parameters slowly and psycopg quotes a text array element by element, so
        the hashes (hex) go as one comma-joined string; on SQLite, SQLAlchemy renders an IN list's
        parameters one by one (~10 µs each), so the statement is the driver's own."""
        conn = self.read_conn()
        if not hashes:
            return {}
        if self.s.bind.dialect.name == "postgresql":
            return dict(conn.exec_driver_sql(
                "SELECT hash, id FROM structures WHERE hash = ANY(string_to_array(%s, ','))",
                (",".join(hashes),)).all())
        found: dict[str, int] = {}
        for chunk in chunks(hashes):
            found.update(conn.exec_driver_sql(
                f"SELECT hash, id FROM structures WHERE hash IN ({', '.join('?' * len(chunk))})",
                tuple(chunk)).all())
        return found

    def execute(self, stmt: Any, params: dict[str, Any]) -> None:
        """Run ``stmt`` (a SQLAlchemy statement) in the ingest's transaction, in order with its
        rows: through the background writer on PostgreSQL, in the session elsewhere."""
        if self.writer is None:
            self.s.execute(stmt, params)
            return
        self.writer.execute(stmt.compile(dialect=self.s.bind.dialect).string, params)

    def finish(self) -> None:
        """Before commit: the foreign keys of the COPYs checked and the writes done (their first
        error raised here)."""
        if self.writer is not None:
            self.writer.check_keys()
            self.writer.wait()

    def stop(self) -> None:
        """Let the writes in flight finish (none is left running on the connection) and close
        the writer and the side connection."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.side is not None:
            if self.side is not self._given_side:
                self.side.close()
            self.side = None
