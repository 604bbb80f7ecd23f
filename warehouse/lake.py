"""The Parquet array lake.

Per-atom arrays and time series live in Hive-partitioned Parquet folders under one root (a local
folder or any URI that ``pyarrow.fs`` understands), e.g.::

    <root>/positions/run=12/part-12-<uuid>.parquet
    <root>/predicted_forces/model=unep-v1/part-14-<uuid>.parquet

so DuckDB, Polars or Spark read them as they are. A file becomes visible under its final name
only when it is complete, and its sha256 is returned for the catalog row that points to it; a
:class:`LakeTransaction` removes what it wrote if the catalog transaction fails.

On a local (or mounted) filesystem "complete before visible" is a write under a temporary name
and a rename. Object stores (S3 and S3-compatible servers, through pyarrow's ``S3FileSystem``;
endpoint and credentials from the standard ``AWS_*`` environment variables) have no rename, a
"move" there is a copy and a delete, but an upload is atomic: the object appears under its key
when the upload completes, never partly. So there the file is uploaded straight to its key.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from warehouse.errors import LakeError

TMP_SUFFIX = ".tmp"
# The lake's identity marker at its root: which catalog the lake belongs to (warehouse.identity).
MARKER = "_warehouse.json"
# part-<ingest run id>-<uuid>.parquet[.tmp]: the run that wrote a file, named in its path
_PART = re.compile(r"(?:^|/)part-(\d+)-[0-9a-f]+\.parquet(?:\.tmp)?$")
# Row groups of ~64k rows keep per-structure reads selective (statistics on structure_id)
# without making files of many tiny groups.
ROW_GROUP_SIZE = 65_536


@dataclass(frozen=True, slots=True)
class WrittenFile:
    path: str  # relative to the lake root, POSIX separators
    sha256: str
    n_rows: int
    n_bytes: int


def numpy_table(columns: dict[str, np.ndarray]) -> pa.Table:
    """A table of 1-D numeric numpy columns, each column's type that of its numpy dtype.

    ``pa.table``/``pa.array`` import pandas on first use (to recognise pandas inputs): ~0.5 s of
    every ingest, which never holds a pandas object. A contiguous numeric array becomes an Arrow
    array over its own buffer (the data is shared, not copied, as ``pa.array`` does too); other
    dtypes (booleans, strings) go through ``pa.array``.
    """
    arrays = []
    for name, values in columns.items():
        values = np.asarray(values)
        if values.ndim != 1:
            raise ValueError(f"column {name!r} is not one-dimensional (shape {values.shape})")
        if values.dtype.kind in "iuf":
            values = np.ascontiguousarray(values)
            arrays.append(pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                                [None, pa.py_buffer(values)]))
        else:
            arrays.append(pa.array(values))
    return pa.Table.from_arrays(arrays, names=list(columns))


def partition_value(value: object) -> str:
    """Make a value safe as a Hive partition folder name (``key=value``)."""
    return quote(str(value), safe="-_.")


class Lake:
    """A Parquet lake rooted at a local folder or a pyarrow filesystem URI."""

    def __init__(self, root: str) -> None:
        self.root_uri = root
        try:
            if "://" in root:
                self.fs, base = pafs.FileSystem.from_uri(root)
            else:
                self.fs, base = pafs.LocalFileSystem(), str(_abspath(root))
        except (pa.ArrowInvalid, OSError) as exc:
            raise LakeError(f"cannot open the lake at {root!r}: {exc}") from exc
        self.base = base.rstrip("/")
        # Object stores publish an upload atomically under its key and have no rename.
        self.atomic_upload = self.fs.type_name not in ("local", "mock")

    def full(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def new_path(self, table: str, partitions: dict[str, object], run_id: int) -> str:
        parts = [table, *(f"{k}={partition_value(v)}" for k, v in partitions.items())]
        parts.append(f"part-{run_id}-{uuid.uuid4().hex[:12]}.parquet")
        return str(PurePosixPath(*parts))

    def write(self, rel: str, table: pa.Table) -> WrittenFile:
        """Write ``table`` at ``rel``, visible there only once complete (see the module's docstring)."""
        sink = pa.BufferOutputStream()
        # Dictionary-encode only non-float columns: on float columns (positions, forces) it costs
        # 3x the write time and makes the file larger, as their values hardly repeat.
        dictionary = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
        pq.write_table(table, sink, row_group_size=ROW_GROUP_SIZE, compression="zstd",
                       use_dictionary=dictionary)
        data = sink.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        final = self.full(rel)
        try:
            if self.atomic_upload:
                with self.fs.open_output_stream(final) as out:
                    out.write(data)
            else:
                tmp = final + TMP_SUFFIX
                self.fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
                with self.fs.open_output_stream(tmp) as out:
                    out.write(data)
                self.fs.move(tmp, final)
        except OSError as exc:
            raise LakeError(f"cannot write lake file {final}: {exc}") from exc
        return WrittenFile(rel, digest, table.num_rows, data.size)

    def read(self, rel: str, *, columns: list[str] | None = None, filters=None) -> pa.Table:
        try:
            return pq.read_table(
                self.full(rel), columns=columns, filters=filters, filesystem=self.fs
            )
        except FileNotFoundError as exc:
            raise LakeError(
                f"lake file {self.full(rel)} is missing; run `warehouse check`"
            ) from exc

    def sha256(self, rel: str) -> str:
        h = hashlib.sha256()
        with self.fs.open_input_stream(self.full(rel)) as src:
            while block := src.read(1 << 20):
                h.update(block)
        return h.hexdigest()

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.full(rel)).type == pafs.FileType.File

    def delete(self, rel: str) -> None:
        try:
            self.fs.delete_file(self.full(rel))
        except FileNotFoundError:
            pass

    def walk(self) -> Iterator[str]:
        """Every data file under the root, relative, including temporary leftovers (the identity
        marker is not one)."""
        selector = pafs.FileSelector(self.base, recursive=True, allow_not_found=True)
        for info in self.fs.get_file_info(selector):
            if info.type == pafs.FileType.File:
                rel = info.path[len(self.base) + 1 :]
                if rel != MARKER:
                    yield rel

    def read_marker(self) -> dict | None:
        """The identity marker's content; None where the lake has none (not bound yet)."""
        try:
            with self.fs.open_input_stream(self.full(MARKER)) as src:
                return json.loads(src.read().decode())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LakeError(f"cannot read the lake's identity marker {self.full(MARKER)}: {exc}") from exc

    def write_marker(self, content: dict) -> None:
        """Write the identity marker (temporary name, then renamed into place)."""
        final = self.full(MARKER)
        tmp = final if self.atomic_upload else f"{final}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"
        try:
            self.fs.create_dir(self.base, recursive=True)
            with self.fs.open_output_stream(tmp) as out:
                out.write(json.dumps(content, indent=1).encode())
            if tmp != final:
                self.fs.move(tmp, final)
        except OSError as exc:
            raise LakeError(f"cannot write the lake's identity marker {final}: {exc}") from exc


def run_of(rel: str) -> int | None:
    """The ingest run id in a lake file's name (``part-<run>-<uuid>.parquet``), or None."""
    match = _PART.search(rel)
    return int(match.group(1)) if match else None


@dataclass
class LakeTransaction:
    """Files written for one catalog transaction; removed again if it does not commit."""

    lake: Lake
    run_id: int
    written: list[WrittenFile] = field(default_factory=list)

    def write(self, table_name: str, table: pa.Table, **partitions: object) -> WrittenFile:
        rel = self.lake.new_path(table_name, partitions, self.run_id)
        wf = self.lake.write(rel, table)
        self.written.append(wf)
        return wf

    def rollback(self) -> None:
        for wf in self.written:
            self.lake.delete(wf.path)
        self.written.clear()


@contextmanager
def lake_transaction(lake: Lake, run_id: int) -> Iterator[LakeTransaction]:
    txn = LakeTransaction(lake, run_id)
    try:
        yield txn
    except BaseException:
        txn.rollback()
        raise


def _abspath(root: str):
    from pathlib import Path

    return Path(root).expanduser().resolve()
