"""Reading back what is stored, in bulk: rows by a list of keys, per-atom arrays from the lake.

The prediction path (matching, error sums) needs, for a whole batch at once, rows of stored
structures, references and predictions, and their per-atom arrays (positions, forces) from the
lake files that hold them: one statement per chunk of keys and one read per lake file, not one
of each per structure.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Table, select
from sqlalchemy.engine import Connection

from warehouse.errors import LakeError
from warehouse.lake import Lake

# Keep IN (...) lists well under SQLite's 32,766 bound-parameter limit.
IN_CHUNK = 900


def atom_index(counts: NDArray[np.integer]) -> NDArray[np.int32]:
    """0..n-1 for every structure's n atoms, concatenated (int32, as the lake stores it)."""
    counts = np.asarray(counts, dtype=np.int64)
    out = np.arange(int(counts.sum()), dtype=np.int32)
    out -= np.repeat((np.cumsum(counts) - counts).astype(np.int32), counts)
    return out


def chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def rows_where_in(conn: Connection, table: Table, columns: Sequence[str], key: str,
                  values: Sequence[int] | Sequence[str], **equal: Any) -> list[tuple]:
    """``columns`` of the rows of ``table`` whose ``key`` is one of ``values`` (integers, or
    texts without commas: hashes, formulas) and whose other columns equal ``equal``.

    The one place with a branch per engine: SQLAlchemy renders an IN list parameter by parameter
    (~4 µs each, 0.1 s for a batch of 30,000 small structures, as much as the rest of the
    batch's statements), so on SQLite and PostgreSQL the statement is sent through the DB-API:
    an IN list of ``?`` (SQLite), one array parameter (PostgreSQL; texts as one comma-joined
    string: psycopg quotes a text array element by element, a regex each).
    """
    values = sorted({v if isinstance(v, str) else int(v) for v in values})
    if not values:
        return []
    dialect = conn.dialect.name
    if dialect not in ("sqlite", "postgresql"):
        stmt = select(*(table.c[c] for c in columns)).where(
            *(table.c[k] == v for k, v in equal.items()))
        return [tuple(r) for chunk in chunks(values)
                for r in conn.execute(stmt.where(table.c[key].in_(chunk)))]
    prep = conn.dialect.identifier_preparer
    cols = ", ".join(prep.quote(c) for c in columns)
    mark = "?" if dialect == "sqlite" else "%s"
    where = "".join(f" AND {prep.quote(k)} = {mark}" for k in equal)
    head = f"SELECT {cols} FROM {prep.format_table(table)} WHERE "
    if dialect == "postgresql":
        if isinstance(values[0], str):
            array, param = f"string_to_array({mark}, ',')", ",".join(values)
        else:
            array, param = f"{mark}::bigint[]", values
        sql = f"{head}{prep.quote(key)} = ANY({array}){where}"
        return [tuple(r) for r in conn.exec_driver_sql(sql, (param, *equal.values()))]
    out: list[tuple] = []
    for chunk in chunks(values):
        sql = f"{head}{prep.quote(key)} IN ({', '.join(mark * len(chunk))}){where}"
        out += [tuple(r) for r in conn.exec_driver_sql(sql, (*chunk, *equal.values()))]
    return out


def _read_file(lake: Lake, rel: str, columns: list[str]):
    """``columns`` of a whole lake file (they hold one batch each). Read as one Parquet file,
    not through ``Lake.read``'s dataset reader: that imports pyarrow.dataset and with it pandas,
    ~1 s of a predictions ingest that reads a few small files."""
    import pyarrow.parquet as pq

    try:
        with lake.fs.open_input_file(lake.full(rel)) as src:
            return pq.ParquetFile(src).read(columns=columns)
    except FileNotFoundError as exc:
        raise LakeError(f"lake file {lake.full(rel)} is missing; run `warehouse check`") from exc


_NUMPY_TYPES = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
                "float": np.float32, "double": np.float64}


def _numpy(column) -> np.ndarray:
    """A lake column (numbers, no nulls) as a numpy array, from its buffers: pyarrow's own
    ``to_numpy`` imports pandas (~1 s of a predictions ingest, which otherwise never needs it)."""
    parts = []
    for chunk in column.chunks:
        dtype = _NUMPY_TYPES.get(str(chunk.type))
        if dtype is None or chunk.null_count:
            return column.to_numpy()
        parts.append(np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk),
                                   offset=chunk.offset * np.dtype(dtype).itemsize))
    return np.concatenate(parts) if parts else np.empty(0)


def lake_paths(conn: Connection, lake_files: Table, ids: Sequence[int]) -> dict[int, str]:
    """lake file id -> its path."""
    return dict(rows_where_in(conn, lake_files, ("id", "path"), "id", ids))


def read_atoms(lake: Lake, paths: dict[int, str], *, id_name: str, owners: NDArray[np.int64],
               files: NDArray[np.int64], counts: NDArray[np.int64],
               columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-atom ``columns`` of ``owners`` (their ``id_name`` values in the lake, e.g. structure
    or reference ids), each owner's ``counts[k]`` rows in atom order, one owner after the other:
    one read per lake file (``files[k]`` holds owner k; ``paths`` names the files).

    Raises LakeError when a file holds another number of rows for an owner than its count
    (the catalog and the lake disagree: ``warehouse check`` says more).
    """
    owners = np.asarray(owners, dtype=np.int64)
    files = np.asarray(files, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    if not len(owners):
        return {c: np.empty((0,)) for c in columns}
    parts: dict[str, list[np.ndarray]] = {c: [] for c in (id_name, "atom_index", *columns)}
    for lf in np.unique(files).tolist():
        t = _read_file(lake, paths[lf], list(parts))
        keep = np.isin(_numpy(t[id_name]), owners[files == lf])
        for c in parts:
            parts[c].append(_numpy(t[c])[keep])
    cols = {c: np.concatenate(v) for c, v in parts.items()}
    order = np.lexsort((cols["atom_index"], cols[id_name]))
    found, first, n_found = np.unique(cols[id_name][order], return_index=True, return_counts=True)
    at = np.searchsorted(found, owners).clip(max=max(len(found) - 1, 0))
    if (not len(found) or not np.array_equal(found[at], owners)
            or not np.array_equal(n_found[at], counts)):
        raise LakeError(f"the lake holds other per-atom rows than the catalog for some"
                             f" {id_name} values; run `warehouse check`")
    take = order[np.repeat(first[at], counts) + atom_index(counts)]
    return {c: cols[c][take] for c in columns}
