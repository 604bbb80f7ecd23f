"""Start reading an ingest's file before the command line is parsed.

``warehouse ingest structures FILE.xyz`` (and ``ingest predictions FILE.xyz``) reads the file
in a child process
(:class:`ingest.extxyz.ExtxyzReader`) while the catalog machinery is imported. Building the
command line (typer, click and pydantic) takes another ~0.2 s on one core before the command
runs, so :func:`start` recognises that command in ``sys.argv`` first and starts the reader then;
the command takes it with :func:`take` if it names the same file and format, and otherwise
starts its own (the guess is closed). A command line this module does not fully understand is
left alone: starting early is only a head start, never a different result.
"""

from __future__ import annotations

import os
import signal
import sys

INTERRUPTED = "Interrupted: nothing from this command was kept."


def _before_install(signum: int, _frame: object) -> None:
    """SIGINT/SIGTERM while this module and ingest.interrupts are still being imported: nothing
    has been done yet, so say so and leave at once (raising here would escape the console
    script's import statement as a traceback). ``console`` replaces it with the real handler."""
    os.write(2, f"{INTERRUPTED}\n".encode())
    os._exit(130 if signum == signal.SIGINT else 143)


# First, before any other import, when the `warehouse` console script (whose first step is to
# import this module) runs; not in a process that imports it as a library (a test runner). What
# is left uncovered is the interpreter's own start-up: see docs/CONCURRENCY.md, "Signals".
if os.path.basename(sys.argv[0]) == "warehouse":
    signal.signal(signal.SIGINT, _before_install)
    signal.signal(signal.SIGTERM, _before_install)

import atexit  # noqa: E402
from pathlib import Path  # noqa: E402

# The root command's options that take a value, and per ingest command that gets a head start
# its own (value-taking options, flags): anything else starting with "-" abandons the guess.
_ROOT_VALUED = {"--url", "--lake"}
_COMMANDS = {
    "structures": ({"--dataset", "-d", "--level-of-theory", "-l", "--subset", "--split",
                    "--format"}, {"--trust-pickle"}),
    # not the --*-key or --voigt-order options: they change what the reader reads
    "predictions": ({"--model", "-m", "--parameters", "--version"}, {"--force"}),
}

_started: dict[str, object] = {}


def skip_root_options(args: list[str]) -> int | None:
    """Where the command starts in ``args``, after the root options (``--url``, ``--lake``);
    None if another option (``--help``) comes first."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        name = args[i].split("=", 1)[0]
        if name not in _ROOT_VALUED:
            return None
        i += 1 if "=" in args[i] else 2
    return i


def guess(args: list[str]) -> tuple[str, str, str | None] | None:
    """The command, file and ``--format`` of ``[root options] ingest structures|predictions
    ...``, else None."""
    i = skip_root_options(args)
    if i is None or len(args) < i + 2 or args[i] != "ingest" or args[i + 1] not in _COMMANDS:
        return None
    command = args[i + 1]
    valued, flags = _COMMANDS[command]
    path, fmt = None, None
    rest = args[i + 2:]
    j = 0
    while j < len(rest):
        tok = rest[j]
        if tok == "--":
            if path is not None or j + 2 != len(rest):
                return None
            path = rest[j + 1]
            break
        if tok.startswith("-") and tok != "-":
            name, eq, value = tok.partition("=")
            if name in flags and not eq:
                j += 1
                continue
            if name not in valued:
                return None  # --help, or an option this guess does not know
            if not eq:
                if j + 1 >= len(rest):
                    return None
                value = rest[j + 1]
                j += 1
            if name == "--format":
                fmt = value
            j += 1
            continue
        if path is not None:
            return None  # a second argument: typer will refuse the command line
        path = tok
        j += 1
    return None if path is None else (command, path, fmt)


def start(args: list[str]) -> None:
    """Start the reader of the extended XYZ file that ``args`` would ingest, if any (and if
    none was started yet: :func:`console` starts it before :func:`cli.app.main` would)."""
    found = guess(args)
    if found is None or "reader" in _started:
        return
    command, path, fmt = found
    reader = start_reader(Path(path), fmt, command)
    if reader is not None:
        _started["reader"] = reader
        _started["key"] = _key(path, fmt, command)
        atexit.register(_close)


def start_reader(path: Path, fmt: str | None, command: str = "structures"):
    """An extended XYZ file's reader process, started before the catalog machinery is imported
    (so the two overlap), with the label keys of ``command`` (structures or predictions, as
    their commands read them without key options); None for other formats, or where the name
    tells nothing."""
    from ingest.formats import detect_format
    from warehouse.errors import IngestError

    try:
        if (fmt or detect_format(path)) != "extxyz" or not path.is_file():
            return None
    except IngestError:
        return None  # the command gives the error
    from ingest.labels import DEFAULT_KEYS, PREDICTION_KEYS
    from ingest.extxyz import ExtxyzReader

    return ExtxyzReader(path, keys=PREDICTION_KEYS if command == "predictions" else DEFAULT_KEYS)


def tune_allocator() -> None:
    """Keep freed memory in the process for reuse (glibc only; elsewhere nothing changes).

    An ingest allocates and frees a few MB of arrays per batch in both processes. By default
    glibc gives such memory back to the kernel when it is freed (an unmapped block, or a trimmed
    heap top) and the next batch faults it in again page by page: ~0.3-0.5 CPU-s of kernel
    time for 1.3M atoms (``benchmarks/ingest.py``; ``WAREHOUSE_TUNE_MALLOC=0`` keeps glibc's
    defaults, for comparison). Here blocks below 64 MB come from the heap, which is trimmed only
    above 1 GB free and grows 256 MB at a time (untouched pages cost nothing); peak RSS is the
    same. Used by the console script only, for an ingest that ends its process when it is done,
    so the kept memory is never a long-lived process's. Called before the reader is forked,
    which inherits the setting.
    """
    if os.environ.get("WAREHOUSE_TUNE_MALLOC", "1") == "0":
        return
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    mallopt(m_mmap_threshold, 64 << 20)
    mallopt(m_trim_threshold, 1 << 30)
    mallopt(m_top_pad, 256 << 20)


def take(path: str | os.PathLike, fmt: str | None, command: str = "structures"):
    """The reader started by :func:`start` if it reads ``path`` as ``fmt`` for ``command``,
    else None (a reader started for another file is closed)."""
    reader = _started.pop("reader", None)
    key = _started.pop("key", None)
    if reader is None:
        return None
    if key != _key(path, fmt, command):
        reader.close()
        return None
    return reader


def _key(path: str | os.PathLike, fmt: str | None, command: str) -> tuple[str, str | None, str]:
    return os.path.realpath(path), fmt, command


def _close() -> None:
    reader = _started.pop("reader", None)
    if reader is not None:
        reader.close()


def console() -> None:
    """The ``warehouse`` console script: :func:`cli.app.main`, with a head start and a quick
    exit for ``ingest structures`` and ``ingest predictions``.

    For those commands the allocator is tuned and the file's reader started first, before typer
    and the command line are imported (~50 ms that the reader would otherwise wait). When the
    command returns, its transaction is committed or undone, its connections, lake files and
    reader process are closed, and its failure (if any) is recorded; what remains is the
    interpreter's teardown, freeing its objects one by one: ~0.2 s after 1.3M atoms, 8 % of
    the ingest, so the process leaves at once (output flushed first). Other commands start
    and end normally (a file object that one of them left open is flushed by that teardown).
    """
    from ingest.interrupts import install

    install()  # first: a signal during the imports below must end the command cleanly too
    ingest = False
    try:
        ingest = guess(sys.argv[1:]) is not None
        if ingest:
            tune_allocator()
            start(sys.argv[1:])
        from cli.app import main

        main()
    except SystemExit as exc:
        if not ingest:
            # The command is done and its status decided; the interpreter's teardown follows
            # (0.1-0.3 s after alembic or matplotlib), during which Python restores the default
            # handlers: a signal then would end a finished command as "killed by SIGTERM".
            # It is ignored instead. (Ignored process-wide: Python keeps SIG_IGN through its
            # teardown, while a blocked signal would still reach another thread, pyarrow's pool.)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            raise
        _leave(exc.code)
    except BaseException as exc:  # Interrupted (or a KeyboardInterrupt) outside a command
        code = interrupted_code(exc)
        if code is None:
            raise
        _close()  # the early reader's process, if one was started
        sys.stderr.write(f"{interrupted_message()}\n")
        _leave(code)


def interrupted_message() -> str:
    """What an interrupt left: nothing, or the ingest runs that had committed before it landed
    (a signal is held off while a commit runs, then raised after it)."""
    loader = sys.modules.get("ingest.loader")
    kept = list(getattr(loader, "COMMITTED_RUNS", ()))
    if not kept:
        return INTERRUPTED
    runs = ", ".join(str(r) for r in kept)
    return (f"Interrupted after ingest run {runs} had committed: that is kept, whole; nothing"
            " after it was.")


def interrupted_code(exc: BaseException) -> int | None:
    """The exit status for a signal's exception (130 for Ctrl-C, 143 for SIGTERM), else None.

    Any other error that escapes once the command's signal handler has run counts as that
    signal: raised inside an import, the signal's exception can come out as another error (a
    class body's ``__set_name__`` makes it the cause of a RuntimeError; numpy's
    ``PyCapsule_Import`` replaces it with an ImportError of its own)."""
    if isinstance(exc, SystemExit):  # a deliberate exit (one that already said it was interrupted)
        return None
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if type(exc).__name__ == "Interrupted":
        return getattr(exc, "exit_code", None)
    interrupts = sys.modules.get("ingest.interrupts")
    signum = getattr(interrupts, "received", None)
    return None if signum is None else interrupts.EXIT_CODES.get(signum, 128 + signum)


def _leave(code: object) -> None:
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            pass
    os._exit(code)
