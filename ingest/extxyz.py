"""Extended XYZ in its real variants (ASE's own, GPUMD's, gzip-compressed).

Two readers give the same frames (a test proves it on every sample file):

* the ``extxyz`` package's C parser (libAtoms/extxyz), about 20x faster than ASE's pure-Python
  reader, used for plain files;
* ASE's ``ase.io.iread``, used for compressed files and as the fallback wherever the C parser
  cannot read a variant: if it fails at frame k, ASE re-reads the file from frame k, so a file
  that either reader can read is read, and an unreadable one is reported by ASE with its frame.

:func:`scan_file` reads the bytes once (it computes the provenance sha256 at the same time) and
refuses binary data and pathologically long lines with the line number; it runs before parsing
(in the reader process, for :class:`ExtxyzReader`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

from ingest.atoms import DEFAULT_KEYS, LabelKeys, batch_from_dicts, frame_from_atoms, validate_frame
from warehouse.errors import IngestError, missing_file
from warehouse.records import BATCH_ATOMS, Frame, FrameBatch

# A comment line longer than this is not a real extended XYZ header (the longest real ones, with
# a 9-component virial, a 9-component stress and a dozen tags, are a few kB).
MAX_LINE_BYTES = 1 << 20
_SCAN_BLOCK = 1 << 22
# Batches read ahead in a reader process: small enough that the loader starts soon and finishes
# soon after the reader (the pipeline's fill and drain), large enough to amortise per-batch work.
READ_AHEAD_BATCH_ATOMS = 100_000

try:  # the C parser is an optional speed-up; ASE reads everything it reads
    from extxyz import cextxyz as _cx
except Exception:  # pragma: no cover - missing shared library
    _cx = None


def _opener(path: str):
    return gzip.open if path.endswith(".gz") else open


def scan_file(path: str | Path) -> str:
    """Return the file's sha256; refuse NUL bytes and over-long lines, naming the line.

    Uses bytes' memchr-based searches: a block's lines are never split out one by one, nor
    counted (counting newlines costs as much as the hash); a refusal counts them up to the
    offending byte, to name its line.
    """
    path = str(path)
    h = hashlib.sha256()
    offset, run = 0, 0  # the block's offset in the (uncompressed) text; how long its first line already is
    try:
        with open(path, "rb") as raw:
            compressed = path.endswith(".gz")
            src = gzip.open(raw) if compressed else raw
            while block := src.read(_SCAN_BLOCK):
                if not compressed:
                    h.update(block)
                if (nul := block.find(b"\0")) >= 0:
                    raise IngestError("binary data (a NUL byte): not a text file", path=path,
                                      where=f"line {_line_at(path, offset + nul)}")
                # Every line must end within MAX_LINE_BYTES of its start: from each line start,
                # jump to the last newline inside that reach (a few jumps per block).
                start, n = -run, len(block)
                while start + MAX_LINE_BYTES + 1 <= n:
                    q = block.rfind(b"\n", max(start, 0), start + MAX_LINE_BYTES + 1)
                    if q < 0:
                        raise IngestError(f"line is longer than {MAX_LINE_BYTES} bytes", path=path,
                                          where=f"line {_line_at(path, offset + max(start, 0))}")
                    start = q + 1
                start = max(start, block.rfind(b"\n") + 1)
                run = n - start
                offset += n
            if compressed:
                raw.seek(0)
                while block := raw.read(_SCAN_BLOCK):
                    h.update(block)
    except (OSError, EOFError) as exc:
        if isinstance(exc, IngestError):
            raise
        raise IngestError(f"cannot read ({exc})", path=path) from exc
    return h.hexdigest()


def _line_at(path: str, offset: int) -> int:
    """The line number (from 1) of the byte at ``offset`` of the file's (uncompressed) text."""
    line = 1
    with _opener(path)(path, "rb") as src:
        while offset > 0 and (block := src.read(min(_SCAN_BLOCK, offset))):
            line += block.count(b"\n")
            offset -= len(block)
    return line


def parse_extxyz(
    path: str | Path, *, reader: str = "auto", keys: LabelKeys = DEFAULT_KEYS
) -> Iterator[Frame]:
    """Yield validated frames of an extended XYZ file, one at a time.

    ``reader`` is ``auto`` (C parser for plain files, ASE otherwise), ``c`` or ``ase``. Raises
    :class:`IngestError` naming the file and the frame for anything unreadable or inconsistent
    (a truncated frame, forces of the wrong length, NaN, a periodic frame with no cell).
    """
    for batch in parse_extxyz_batches(path, reader=reader, keys=keys, batch_atoms=20_000):
        yield from batch.frames()


def parse_extxyz_batches(
    path: str | Path, *, reader: str = "auto", keys: LabelKeys = DEFAULT_KEYS,
    batch_atoms: int = BATCH_ATOMS,
) -> Iterator[FrameBatch]:
    """:func:`parse_extxyz` as validated batches of about ``batch_atoms`` atoms, for the loader.

    With the C parser, frames go from its dictionaries straight into batch columns and are
    validated once per batch (no per-frame records): most of an ingest's parsing time otherwise.
    """
    path = str(path)
    if not Path(path).is_file():
        raise missing_file(path)
    if Path(path).stat().st_size == 0:
        raise IngestError("file is empty", path=path)
    try:
        yield from _parse(path, reader, keys, batch_atoms)
    except IngestError as exc:
        if exc.path is None:  # raised by a converter that does not know the file
            raise IngestError(str(exc), path=path, where=exc.where) from exc
        raise


class ExtxyzReader:
    """An extended XYZ file read ahead of the loader, for ``warehouse ingest structures``.

    Reading (parsing, building batches, hashing structures) is as much work as writing, so it
    runs in a child process (:class:`ingest.prefetch.ReadAhead`) while the loader writes, from
    the moment the reader is made: the CLI makes it before it imports the catalog machinery.
    The child first checks the bytes (:func:`scan_file`: no binary data, no over-long line) and
    computes the file's sha256, then parses: its first item is the sha256 or the check's error,
    which :meth:`check` returns or raises before any batch is taken, and the parser never runs
    on a file the check refuses. (The check ran in a thread of this process before; its bytes
    searches hold the GIL, so it slowed the catalog imports that it overlapped, while the child
    has time to spare: it waits for the loader most of the run.) Structure hashes and descriptions (formula, cell text, ...) are computed by the reader when
    the loader is still busy with the previous batch, and otherwise left to the loader
    (:meth:`FrameBatch.identity` and :meth:`FrameBatch.description` compute them on first use):
    whichever side has time does it.

    Call :meth:`sha256` (which waits for the check), then iterate for the batches; :meth:`close`
    ends the reader.
    """

    def __init__(self, path: str | Path, *, keys: LabelKeys = DEFAULT_KEYS,
                 batch_atoms: int = READ_AHEAD_BATCH_ATOMS, mode: str | None = None) -> None:
        from ingest.prefetch import ReadAhead

        self.path = path_ = str(path)
        self._sha: str | None = None
        self._stream = ReadAhead(lambda idle: _stream(path_, keys, batch_atoms, idle), mode=mode)

    def _next(self):
        from ingest.prefetch import ReaderDied

        try:
            return next(self._stream)
        except ReaderDied as exc:
            raise IngestError(f"cannot read extended XYZ: {exc}", path=self.path) from exc

    def check(self) -> None:
        """Wait for the byte check; raise what it found (binary data, an over-long line)."""
        if self._sha is None:
            self._sha = self._next()  # the reader's first item, or its error

    def sha256(self) -> str:
        self.check()
        return self._sha  # type: ignore[return-value]

    def __iter__(self) -> ExtxyzReader:
        return self

    def __next__(self) -> FrameBatch:
        self.check()  # the check comes first, whatever the caller asks for first
        return self._next()

    def __enter__(self) -> ExtxyzReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stream.close()


def _stream(path: str, keys: LabelKeys, batch_atoms: int, consumer_idle) -> Iterator[str | FrameBatch]:
    """The reader's side of :class:`ExtxyzReader`: the file's sha256 once its bytes are checked
    (or the check's error), then validated batches, hashed here unless the loader waits for
    them. The parser never sees a file that the check refuses."""
    yield scan_file(path)
    for batch in parse_extxyz_batches(path, keys=keys, batch_atoms=batch_atoms):
        if not consumer_idle():
            batch.identity()
            batch.description()
        yield batch


def _parse(path: str, reader: str, keys: LabelKeys, batch_atoms: int) -> Iterator[FrameBatch]:
    use_c = reader == "c" or (reader == "auto" and _cx is not None and not path.endswith(".gz"))
    index = 0
    if use_c:
        state = {"complete": True}
        raw: list[tuple[int, int, dict, dict]] = []
        atoms = 0
        for natoms, info, arrays in _iter_c(path, state):
            raw.append((index, natoms, info, arrays))
            index += 1
            atoms += natoms
            if atoms >= batch_atoms:
                yield batch_from_dicts(raw, path, keys)
                raw, atoms = [], 0
        if raw:
            yield batch_from_dicts(raw, path, keys)
        if state["complete"]:
            if index == 0:
                raise IngestError("no frames found", path=path)
            return
    frames: list[Frame] = []
    atoms = 0
    for frame in _iter_ase(path, start=index, keys=keys):
        frames.append(validate_frame(frame, path))
        index += 1
        atoms += frame.n_atoms
        if atoms >= batch_atoms:
            yield FrameBatch.from_frames(frames)
            frames, atoms = [], 0
    if frames:
        yield FrameBatch.from_frames(frames)
    if index == 0:
        raise IngestError("no frames found", path=path)


def _iter_c(path: str, state: dict[str, bool]) -> Iterator[tuple[int, dict, dict]]:
    """The C parser's (natoms, info, arrays) per frame; where it cannot go on, sets
    ``state["complete"]`` false (ASE then reads from that frame on)."""
    size = Path(path).stat().st_size
    fp = _cx.cfopen(path, "r")
    try:
        while True:
            pos = _cx.cftell(fp)
            try:
                natoms, info, arrays = _cx.read_frame_dicts(fp, use_cleri=False)
            except EOFError:
                # the C parser treats a truncated last frame as the end: ASE names the problem
                state["complete"] = not _has_text_after(path, pos, size)
                return
            except Exception:  # noqa: BLE001 - any parser complaint: let ASE decide and explain
                state["complete"] = False
                return
            info.pop("Properties", None)
            yield natoms, info, arrays
    finally:
        _cx.cfclose(fp)


def _has_text_after(path: str, pos: int, size: int) -> bool:
    if pos >= size:
        return False
    with open(path, "rb") as fh:
        fh.seek(pos)
        return bool(fh.read().strip())


def _iter_ase(path: str, *, start: int = 0, keys: LabelKeys = DEFAULT_KEYS) -> Iterator[Frame]:
    """Frames through ASE, one frame's lines at a time, so that errors name the frame and line.

    (``ase.io.iread`` indexes the whole file first and reports header errors as frame 0.)
    """
    line_no = 0
    index = 0
    try:
        with _opener(path)(path, "rt", encoding="utf-8") as fh:
            while line := fh.readline():
                line_no += 1
                if not line.strip():
                    continue  # blank lines between or after frames
                where = f"frame {index}, line {line_no}"
                try:
                    natoms = int(line.split()[0])
                    if natoms < 0:
                        raise ValueError
                except ValueError:
                    raise IngestError(f"expected the number of atoms, got {line.strip()[:40]!r}",
                                      path=path, where=where) from None
                lines = [line]
                for k in range(natoms + 1):
                    if not (more := fh.readline()):
                        raise IngestError(
                            f"file ends inside the frame: {natoms} atoms announced, {max(k - 1, 0)}"
                            " found (truncated frame)", path=path, where=where)
                    lines.append(more)
                line_no += natoms + 1
                if index >= start:
                    import ase.io  # deferred: it pulls in scipy (~0.6 s); only the fallback needs it

                    try:
                        atoms = ase.io.read(io.StringIO("".join(lines)), format="extxyz")
                    except Exception as exc:  # ASE raises many types for malformed input
                        raise IngestError(_describe(exc), path=path, where=where) from exc
                    yield frame_from_atoms(atoms, index, keys=keys)
                index += 1
    except UnicodeDecodeError as exc:
        raise IngestError(f"not UTF-8 text ({exc.reason})", path=path,
                          where=f"frame {index}, line {line_no + 1}") from exc


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot read extended XYZ ({type(exc).__name__}: {text[:300]})"
