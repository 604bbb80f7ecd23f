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
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase.data import chemical_symbols
from ase.formula import non_metals
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.engine import Connection

SYMBOLS = np.array(chemical_symbols)
# Alphabetical rank of every element symbol: sorting by it sorts symbols as strings.
_ALPHA_RANK = np.argsort(np.argsort(SYMBOLS))


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
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY {prep.format_table(table)} ({cols}) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(_encode_json(row, json_cols) if json_cols else row)
        return
    conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


class JsonText(str):
    """A JSON column's value already encoded (e.g. by :func:`cells_json`): written as it is."""


def _encode_json(row: tuple, json_cols: list[int]) -> tuple:
    row = list(row)
    for i in json_cols:
        v = row[i]
        if v is not None and not isinstance(v, JsonText):
            row[i] = json.dumps(v)
    return tuple(row)


_CELL_JSON = "[[{!r}, {!r}, {!r}], [{!r}, {!r}, {!r}], [{!r}, {!r}, {!r}]]"


def cells_json(cells: np.ndarray) -> list[JsonText]:
    """``json.dumps(cell.tolist())`` of stacked finite 3x3 cells, several times faster (the same
    text: JSON writes a float as its repr)."""
    return [JsonText(_CELL_JSON.format(*c)) for c in cells.reshape(-1, 9).tolist()]


def composition(numbers: np.ndarray) -> tuple[list[str], list[int]]:
    """Element symbols in alphabetical order and their counts."""
    per_z = np.bincount(numbers, minlength=len(SYMBOLS))
    z = np.flatnonzero(per_z)
    z = z[np.argsort(_ALPHA_RANK[z])]
    return SYMBOLS[z].tolist(), per_z[z].tolist()


_SYMBOLS_BY_RANK = SYMBOLS[np.argsort(SYMBOLS)]


def compositions(numbers: np.ndarray, counts: np.ndarray) -> tuple[list[list[str]], list[list[int]], list[str]]:
    """:func:`composition` and :func:`reduced_formula` of many structures (atoms concatenated,
    ``counts`` atoms each): per structure its symbols, their counts and its formula.

    The element counts of the whole batch come from one bincount; each distinct composition is
    formatted once (a dataset has far fewer compositions than structures).
    """
    k = len(SYMBOLS)
    frame = np.repeat(np.arange(len(counts)), counts)
    table = np.bincount(frame * k + _ALPHA_RANK[numbers], minlength=len(counts) * k)
    unique, inverse = np.unique(table.reshape(len(counts), k), axis=0, return_inverse=True)
    syms, cnts, formulas = [], [], []
    for row in unique:
        nz = np.flatnonzero(row)
        syms.append(_SYMBOLS_BY_RANK[nz].tolist())
        cnts.append(row[nz].tolist())
        formulas.append(reduced_formula(syms[-1], cnts[-1]))
    inverse = inverse.reshape(-1).tolist()
    return [syms[i] for i in inverse], [cnts[i] for i in inverse], [formulas[i] for i in inverse]


def det3_batch(c: np.ndarray) -> np.ndarray:
    """:func:`det3` of stacked (F, 3, 3) matrices, in the same operation order (same rounding)."""
    a, b, d = c[:, 0, 0], c[:, 0, 1], c[:, 0, 2]
    e, f, g = c[:, 1, 0], c[:, 1, 1], c[:, 1, 2]
    h, i, j = c[:, 2, 0], c[:, 2, 1], c[:, 2, 2]
    return a * (f * j - g * i) - b * (e * j - g * h) + d * (e * i - f * h)


_NON_METALS = frozenset(non_metals)


def reduced_formula(symbols: list[str], counts: list[int]) -> str:
    """ASE's ``Formula(...).reduce()[0].format("metal")``: metals then non-metals, each
    alphabetical, counts divided by their greatest common divisor, a count of 1 omitted
    (e.g. ``AlCu3``, ``Pr13As3Xe8``). A test compares the two on random compositions."""
    g = math.gcd(*counts)
    pairs = sorted(zip(symbols, counts, strict=True), key=lambda sc: (sc[0] in _NON_METALS, sc[0]))
    return "".join(s if c // g == 1 else f"{s}{c // g}" for s, c in pairs)


def det3(c: np.ndarray) -> float:
    """Determinant of a 3x3 matrix, written out: np.linalg.det costs ~30 µs a call, this ~3."""
    (a, b, d), (e, f, g), (h, i, j) = c.tolist()
    return a * (f * j - g * i) - b * (e * j - g * h) + d * (e * i - f * h)


def as_float(value: Any) -> float | None:
    return None if value is None else float(value)
