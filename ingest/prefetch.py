"""Read ahead in a background thread while the loader writes.

An ingest alternates between parsing (the C parser, building batch columns) and writing
(hashing, SQLite or COPY, Parquet). Most of the writing runs outside the GIL (sqlite3 and psycopg
release it while the database works, as do pyarrow, hashlib and numpy on large arrays), so
reading the next batch in a second thread overlaps the two on a machine with two or more cores.
The queue holds ``depth`` batches, so memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


def prefetch(items: Iterable[T], *, depth: int = 1) -> Iterator[T]:
    """Yield ``items``, produced by a background thread up to ``depth`` items ahead.

    An exception raised while producing is re-raised here, in the consumer, at the item where
    it occurred. If the consumer stops early (an error, Ctrl-C), the producer stops at its next
    item and the source iterator is closed (its files released).
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((_END, exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="warehouse-reader", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is _END:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        thread.join()
