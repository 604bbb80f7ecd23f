"""An ingest's lake files: a ``lake_files`` row reserved first, the file written, the row
completed with its path and sha256, all in the ingest's transaction.

Rows that point at a file can so be inserted (and get their ids) before it exists; the file,
keyed by those ids, is written next. No reader ever sees the row without the file: both land at
commit or neither. A file's name carries the ingest's run id (``warehouse.lake.Lake.new_path``),
which is how ``warehouse check --repair`` knows whose it is (``warehouse.check``). Files can be
written by a worker thread (Parquet encoding and compression run outside the GIL, beside the
database statements); :meth:`LakeFiles.flush` waits for them and completes their rows.
"""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow as pa
from sqlalchemy import text

from ingest.writers.bulk import BulkPath
from warehouse import models as m
from warehouse.lake import LakeTransaction, WrittenFile

LAKE_FILE_COLS = ("id", "path", "kind", "sha256", "n_rows", "n_bytes", "ingest_run_id")
# a textual statement: the ORM's UPDATE costs ~2 ms a file to build
_COMPLETE = text("UPDATE lake_files SET path = :path, sha256 = :sha256, n_rows = :n_rows,"
                 " n_bytes = :n_bytes WHERE id = :id")


class LakeFiles:
    """The lake files of one ingest (run ``run_id``), written through ``lake`` (its
    :class:`LakeTransaction`, which removes them again if the ingest does not commit)."""

    def __init__(self, session: Any, lake: LakeTransaction, bulk: BulkPath, run_id: int) -> None:
        self.s = session
        self.lake = lake
        self.bulk = bulk
        self.run_id = run_id
        self._pool: Any = None  # a worker thread for background writes, made on first use
        self._pending: list[tuple[int, Any]] = []  # (lake_files id, future of its WrittenFile)

    def _pending_path(self) -> str:
        return f"pending/{self.run_id}/{uuid.uuid4().hex}"

    def reserve(self, kind: str) -> m.LakeFile:
        """A ``lake_files`` row (an ORM object, its id known) to own rows before the file exists."""
        lf = m.LakeFile(path=self._pending_path(), kind=kind, sha256="", n_rows=0, n_bytes=0,
                        ingest_run_id=self.run_id)
        self.s.add(lf)
        self.s.flush()
        return lf

    def reserve_id(self, kind: str) -> int:
        """:meth:`reserve` for the batch writers: the id, the row written as the batch's other
        rows are (by the background writer on PostgreSQL), not by the ORM."""
        lf_id = self.bulk.new_ids(m.LakeFile.__table__, 1)[0]
        self.bulk.rows(m.LakeFile.__table__, LAKE_FILE_COLS, [
            (lf_id, self._pending_path(), kind, "", 0, 0, self.run_id)])
        return lf_id

    def fill(self, lf: m.LakeFile | int, table_name: str, table: pa.Table, *,
             background: bool = False, **parts: object) -> None:
        """Write ``table`` under ``<lake>/<table_name>/<key=value>.../`` and complete ``lf``;
        with ``background``, by the worker thread, completed by the next :meth:`flush`."""
        lf_id = lf if isinstance(lf, int) else lf.id
        if not background:
            self.complete(lf_id, self.lake.write(table_name, table, **parts))
            if not isinstance(lf, int):
                self.s.expire(lf)  # completed by a statement: read back on next use
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warehouse-lake")
        self._pending.append((lf_id, self._pool.submit(self.lake.write, table_name, table, **parts)))

    def flush(self) -> None:
        """Wait for the background writes; record each file's path and sha256 on its row."""
        pending, self._pending = self._pending, []
        for lf_id, future in pending:
            self.complete(lf_id, future.result())

    def complete(self, lf_id: int, wf: WrittenFile) -> None:
        self.bulk.execute(_COMPLETE, {"id": lf_id, "path": wf.path, "sha256": wf.sha256,
                                      "n_rows": wf.n_rows, "n_bytes": wf.n_bytes})

    def stop(self) -> None:
        """Let the background writes finish (their files are then in the lake transaction, for
        a rollback to remove) and stop the worker."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
