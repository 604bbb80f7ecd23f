"""Read ahead while the loader writes: in a child process where the OS can fork, else a thread.

An ingest alternates between reading (the C parser, building batch columns, hashing) and writing
(catalog rows, Parquet). Both are mostly Python holding the GIL, so a reader *thread* overlaps
them poorly: measured on 2 cores, it also slowed sqlite3's executemany about 3x, which gives the
GIL up and waits to get it back for every row. :class:`ReadAhead` therefore runs the reader in a
forked child process and receives its batches over a plain pipe: each message is pickled with
its numpy arrays out of band (pickle protocol 5), and the arrays' bytes are written from their
own buffers and read into fresh ones (``_send``/``_recv``). That halves the CPU time of the
hand-over (~0.35 -> ~0.17 CPU-s for 1.3M atoms, both processes together) against
multiprocessing's ``Connection``, which copies every array into the pickle and out again, and
each received message through a BytesIO. The child holds at most a few batches ready
(``CHILD_QUEUE``), so memory stays bounded.

The child is forked before it reads anything and never touches what it inherited (the catalog
connection, the lake); it ignores Ctrl-C (the parent handles it, then ends the child), gets
SIGINT and SIGTERM only once its own handlers are set (they are blocked across the fork) and leaves
through ``os._exit``, so nothing inherited is closed or flushed twice. Where fork is not safe
(Windows, macOS, or a process that already runs other threads), the thread version
:func:`prefetch` is used.
"""

from __future__ import annotations

import io
import os
import pickle
import queue
import signal
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()

# Items a reader process may hold ready beyond the one being sent: it keeps working while the
# parent starts up or is slow, and memory stays bounded (a 100k-atom batch is ~6 MB).
CHILD_QUEUE = 4
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
# "process", "thread" or "inline" (no read-ahead); tests set it to exercise each path.
MODE = os.environ.get("WAREHOUSE_READ_AHEAD", "process")


class ReaderDied(RuntimeError):
    """The reader process ended without sending its items (killed, or crashed in C code)."""

    def __init__(self, exitcode: int | None) -> None:
        self.exitcode = exitcode
        how = (f"killed by signal {-exitcode}" if exitcode is not None and exitcode < 0
               else f"exit code {exitcode}")
        super().__init__(f"the reader process ended without a result ({how})")


class ReadAhead(Generic[T]):
    """The items of ``produce(consumer_idle)``, produced ahead of the consumer (see the module
    notes); ``consumer_idle()`` tells the producer whether the consumer is waiting for an item.

    The producer starts at construction, so a caller can start reading before it imports or
    opens anything else. Exceptions raised while producing are re-raised by ``next``, at the
    item where they occurred. :meth:`close` (or leaving a ``with`` block) ends the producer.
    """

    def __init__(self, produce: Callable[[Callable[[], bool]], Iterable[T]], *,
                 mode: str | None = None) -> None:
        mode = mode or MODE
        if mode == "process" and not _can_fork():
            mode = "thread"
        self.mode = mode
        self._child = self._recv = None
        if mode == "process":
            import multiprocessing as mp

            ctx = mp.get_context("fork")
            # 1 while this process waits in next(): the producer may then skip work it can
            # leave to the consumer (see ingest.extxyz.ExtxyzReader)
            waiting = ctx.Value("b", 0, lock=False)
            self._set_waiting = lambda on: setattr(waiting, "value", int(on))
            read_fd, write_fd = os.pipe()
            _widen_pipe(write_fd)
            self._recv = io.FileIO(read_fd, "rb")
            send_end = io.FileIO(write_fd, "wb")
            self._child = ctx.Process(
                target=_child_main,
                args=(lambda: produce(lambda: bool(waiting.value)), send_end, read_fd),
                name="warehouse-reader", daemon=True)
            # SIGINT and SIGTERM wait while the child is made: a child that got one before it
            # set its own handlers would run the parent's (raising inside fork's after-fork
            # hooks: "Exception ignored ..." on stderr); it takes them once its handlers are set
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
            try:
                self._child.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            send_end.close()  # the child's end alone now holds the pipe open
            self._it: Iterator[T] = self._receive()
        elif mode == "thread":
            event = threading.Event()
            self._set_waiting = lambda on: event.set() if on else event.clear()
            self._it = prefetch(produce(event.is_set))
        else:
            self._set_waiting = lambda on: None
            self._it = iter(produce(lambda: True))

    def __iter__(self) -> ReadAhead[T]:
        return self

    def __next__(self) -> T:
        self._set_waiting(True)
        try:
            return next(self._it)
        finally:
            self._set_waiting(False)

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            close()
        if self._child is not None:
            self._recv.close()  # a child blocked on a full pipe gets EPIPE and leaves
            if self._child.is_alive():
                self._child.terminate()
            self._child.join()
            self._child = None

    def _receive(self) -> Iterator[T]:
        while True:
            try:
                tag, payload = _recv(self._recv)
            except EOFError:
                self._child.join()
                raise ReaderDied(self._child.exitcode) from None
            if tag == "item":
                yield payload
            elif tag == "error":
                raise payload
            else:
                return


def _widen_pipe(fd: int) -> None:
    """Ask Linux for a 1 MB pipe buffer (default 64 kB): a 100k-atom batch is ~6 MB, and each
    buffer's worth costs the two processes a hand-over."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (OSError, ImportError):  # not Linux, or above the system's pipe-max-size: keep it
        pass


def _can_fork() -> bool:
    """Fork only on Linux, and only while this process runs no other thread: a thread could
    hold a lock (an import, a library's) that the child would then wait on forever. The CLI
    forks first thing; a notebook kernel, which has threads, gets the thread reader."""
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return False
    import multiprocessing as mp

    return "fork" in mp.get_all_start_methods()


def _child_main(produce: Callable[[], Iterable[T]], send_end: io.FileIO, read_fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's to handle; it ends us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by the parent for the fork
    os.close(read_fd)  # the parent's end: once the parent closes it, a send here fails (EPIPE)
    code = 0
    try:
        try:
            # produced in a thread, sent from this one: the producer runs on while a send waits
            # for the parent to read (a pipe holds less than one item)
            for item in prefetch(produce(), depth=CHILD_QUEUE):
                _send(send_end, ("item", item))
            _send(send_end, ("end", None))
        except (BrokenPipeError, ConnectionResetError):
            code = 1  # the parent stopped reading: nothing more to do
        except BaseException as exc:  # noqa: BLE001 - handed to the parent, raised there
            _send(send_end, ("error", _portable(exc)))
    except BaseException:  # noqa: BLE001 - cannot even report: the parent sees EOF
        code = 1
    finally:
        os._exit(code)  # no atexit handlers, no finalisers of inherited connections


def _send(out: io.FileIO, message: object) -> None:
    """Write ``message`` with its buffers (numpy arrays) out of band: the length of a pickle of
    the rest with the buffers' sizes, that pickle, then each buffer's bytes from memory."""
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    meta = pickle.dumps((head, [r.nbytes for r in raws]), protocol=5)
    _write_all(out, struct.pack("<Q", len(meta)) + meta)
    for raw in raws:
        _write_all(out, raw)


def _write_all(out: io.FileIO, data: bytes | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[out.write(view):]


def _recv(src: io.FileIO) -> object:
    """A message written by :func:`_send`, its arrays in fresh writable buffers; EOFError if
    the writer is gone (also part-way through a message)."""
    (n,) = struct.unpack("<Q", _read_exact(src, 8))
    head, sizes = pickle.loads(_read_exact(src, n))
    return pickle.loads(head, buffers=[_read_exact(src, k) for k in sizes])


def _read_exact(src: io.FileIO, n: int) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = src.readinto(view[got:])
        if not k:
            raise EOFError(f"the pipe ended {n - got} bytes short of a message")
        got += k
    return buf


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError with its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")


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
