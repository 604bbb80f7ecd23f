"""Ctrl-C and SIGTERM take effect at once, from process start, but never inside a database call.

The console script installs :func:`install` as its very first step, so a signal during the
imports, the command-line parsing, long CPU work (matching, error sums) or a wait is raised
there and then as :class:`Interrupted`, which the CLI turns into "Interrupted: nothing from this
command was kept." and exit status 130 (SIGINT) or 143 (SIGTERM). ``Interrupted`` is a
``BaseException``, so no ``except Exception`` on the way swallows it, and every ``ingest_run`` on
the way rolls back its transaction and removes its lake files.

Two places defer it instead of raising:

- Inside a database driver call on the main thread (between SQLAlchemy's
  ``before_cursor_execute`` and ``after_cursor_execute``, tracked by :func:`watch_engine`). An
  exception raised inside sqlite3's or psycopg's call leaves the connection invalidated but not
  closed; on SQLite its half-run statement keeps the write lock, so the rollback and the failed
  run's row would wait out the busy timeout. The signal is raised a moment after the call
  returns (a 50 ms timer checks again), which for the statements an ingest sends is well within
  a second.
- Inside a :func:`critical` block: an ingest's commit, which must either land whole or be undone
  whole; the interrupt is raised when the block ends (``ingest_run`` then finds out which).

Where Python itself drops an exception (a weakref callback or a finaliser: "Exception ignored
in: ..."), the interrupt is raised again 50 ms later; where C code replaces it with an error of
its own, :data:`received` still says which signal came.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# the exit status of a process ended by a signal, as a shell reports it
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
RECHECK_S = 0.05

_depth = 0  # critical blocks entered
_in_call = False  # a driver call in progress on the main thread
_pending: BaseException | None = None
# The signal this command is stopping on, once one came. Its exception can be lost on the way:
# raised inside an import, C code may replace it with an error of its own (numpy's
# PyCapsule_Import, an ImportError with no cause). The CLI then still knows why it is stopping.
received: int | None = None
_unraisable_before = sys.unraisablehook  # the hook that prints "Exception ignored in: ..."
_main = threading.main_thread()


class Interrupted(BaseException):
    """A SIGINT or SIGTERM: the command stops, and keeps nothing it had not committed."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = EXIT_CODES.get(signum, 128 + signum)
        super().__init__(f"interrupted by signal {signal.Signals(signum).name}")


def install() -> None:
    """Raise :class:`Interrupted` on SIGINT and SIGTERM from now on (main thread only)."""
    global received, _unraisable_before
    if threading.current_thread() is not _main:
        return
    received = None
    for sig in EXIT_CODES:
        signal.signal(sig, _on_signal)
    signal.signal(signal.SIGALRM, _on_recheck)
    if sys.unraisablehook is not _on_unraisable:
        _unraisable_before = sys.unraisablehook
        sys.unraisablehook = _on_unraisable


def _on_unraisable(unraisable: Any) -> None:
    """An interrupt raised where Python cannot pass an exception on (a weakref callback, such as
    importlib's module locks', or a finaliser) is printed as "Exception ignored" and dropped: the
    command would run on as if no signal had come. It is raised again a moment later instead."""
    global _pending
    if isinstance(unraisable.exc_value, Interrupted):
        _pending = unraisable.exc_value
        signal.setitimer(signal.ITIMER_REAL, RECHECK_S)
        return
    _unraisable_before(unraisable)


def _on_signal(signum: int, _frame: Any) -> None:
    global received
    received = signum
    # one interrupt per command: a second Ctrl-C or TERM must not cut the rollback short
    for sig in EXIT_CODES:
        signal.signal(sig, signal.SIG_IGN)
    interrupt(Interrupted(signum))


def _on_recheck(_signum: int, _frame: Any) -> None:
    global _pending
    if _pending is not None and not _depth:
        exc, _pending = _pending, None
        interrupt(exc)


def interrupt(exc: BaseException) -> None:
    """Raise ``exc`` now; inside a driver call shortly after it; inside a critical block when
    the block ends."""
    global _pending
    if _depth or _in_call:
        _pending = exc
        if not _depth:
            signal.setitimer(signal.ITIMER_REAL, RECHECK_S)
        return
    raise exc


@contextmanager
def critical() -> Iterator[None]:
    """A block that an interrupt does not cut: it is raised when the block ends."""
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            exc, _pending = _pending, None
            raise exc


def watch_engine(engine: Any) -> None:
    """Track the main thread's driver calls on ``engine`` (see the module notes); once."""
    from sqlalchemy import event

    if event.contains(engine, "before_cursor_execute", _call_starts):
        return
    event.listen(engine, "before_cursor_execute", _call_starts)
    event.listen(engine, "after_cursor_execute", _call_ends)
    event.listen(engine, "handle_error", _call_failed)


def _call_starts(*_args: Any) -> None:
    global _in_call
    if threading.current_thread() is _main:
        _in_call = True


def _call_ends(*_args: Any) -> None:
    global _in_call
    if threading.current_thread() is _main:
        _in_call = False


def _call_failed(_context: Any) -> None:
    _call_ends()
