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
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ingest import xyzheader
from ingest.atoms import batch_from_dicts, frame_from_atoms, validate_frame
from ingest.labels import DEFAULT_KEYS, STRESS_KEYS, VIRIAL_KEYS, LabelKeys
from ingest.xyzheader import (
    HeaderError,
    atom_count,
    check_after_c,
    check_atom_lines,
    check_before_c,
    check_comment,
)
from ingest.textio import reader_guard
from warehouse.errors import IngestError, missing_file
from warehouse.records import BATCH_ATOMS, Frame, FrameBatch

# A comment line longer than this is not a real extended XYZ header (the longest real ones, with
# a 9-component virial, a 9-component stress and a dozen tags, are a few kB).
MAX_LINE_BYTES = 1 << 20
_SCAN_BLOCK = 1 << 22
# Batches read ahead in a reader process: small enough that the loader starts soon and finishes
# soon after the reader (the pipeline's fill and drain), large enough to amortise per-batch work.
READ_AHEAD_BATCH_ATOMS = 100_000
_TENSOR_KEYS = {k.lower() for k in (*STRESS_KEYS, *VIRIAL_KEYS)}

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
            limit = expansion_limit(Path(path).stat().st_size) if compressed else None
            while block := src.read(_SCAN_BLOCK):
                if limit is not None and offset + len(block) > limit:
                    raise IngestError(_expansion_message(Path(path).stat().st_size, limit),
                                      path=path)
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
    except (OSError, EOFError, zlib.error) as exc:
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


@reader_guard
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
    ``state["complete"]`` false (ASE then reads from that frame on, and names the problem).

    The parser sees a frame only after its two header lines are read here: it crashes
    (segfault) on an atom count it cannot allocate, wraps counts past 2^32, keeps the last of
    a key given twice, and stops at a blank line (skipped here, in bulk).
    """
    size = Path(path).stat().st_size
    fp = _cx.cfopen(path, "r")
    try:
        with open(path, "rb") as fh:
            while True:
                pos = _cx.cftell(fp)
                fh.seek(pos)
                first = fh.readline(MAX_LINE_BYTES + 1)
                if first and first.isspace():
                    if (pos := _skip_blank(fh, pos)) is None:
                        return  # only blank lines left
                    _cx.cfseek(fp, pos, 0)
                    first = fh.readline(MAX_LINE_BYTES + 1)
                if not first:
                    return
                comment = fh.readline(MAX_LINE_BYTES + 1)
                if not check_before_c(first, comment, size - fh.tell()):
                    state["complete"] = False  # the ASE path refuses it, naming frame and line
                    return
                try:
                    natoms, info, arrays = _cx.read_frame_dicts(fp, use_cleri=False)
                except EOFError:
                    # the C parser treats a truncated last frame as the end: ASE names the problem
                    state["complete"] = not _has_text_after(path, pos, size)
                    return
                except Exception:  # noqa: BLE001 - any parser complaint: let ASE decide and explain
                    state["complete"] = False
                    return
                try:
                    check_after_c(comment, info)
                except (HeaderError, UnicodeDecodeError):
                    state["complete"] = False
                    return
                info.pop("Properties", None)
                yield natoms, info, arrays
    finally:
        _cx.cfclose(fp)


_NON_BLANK = re.compile(rb"\S")


def _skip_blank(fh, pos: int) -> int | None:
    """The offset of the first line at or after ``pos`` that is not blank (None at the end),
    found a block at a time: a file of blank lines costs no loop per line."""
    fh.seek(pos)
    while block := fh.read(1 << 16):  # small: a blank line between frames is common
        if (m := _NON_BLANK.search(block)) is not None:
            start = pos + block.rfind(b"\n", 0, m.start()) + 1
            fh.seek(start)
            return start
        pos += len(block)
    return None


def _has_text_after(path: str, pos: int, size: int) -> bool:
    if pos >= size:
        return False
    with open(path, "rb") as fh:
        return _skip_blank(fh, pos) is not None


def _iter_ase(path: str, *, start: int = 0, keys: LabelKeys = DEFAULT_KEYS) -> Iterator[Frame]:
    """Frames through ASE, one frame's lines at a time, so that errors name the frame and line.

    (``ase.io.iread`` indexes the whole file first and reports header errors as frame 0.)
    """
    import ase.io  # deferred: it pulls in scipy (~0.6 s); only the fallback needs it

    for frame_text in frame_texts(path, keys=keys):
        if frame_text.index < start:
            continue
        try:
            atoms = ase.io.read(io.StringIO(frame_text.text), format="extxyz")
        except Exception as exc:  # ASE raises many types for malformed input
            raise IngestError(_describe(exc), path=path, where=frame_text.where) from exc
        try:
            frame = frame_from_atoms(atoms, frame_text.index, keys=keys)
        except IngestError as exc:
            raise IngestError(exc.message, path=path, where=frame_text.where) from exc
        yield frame


@dataclass(frozen=True, slots=True)
class FrameText:
    """One frame's text, its header checked (:mod:`ingest.xyzheader`) and every atom line with
    exactly the declared columns, ready for ASE."""

    index: int
    line: int  # of its atom-count line, from 1
    text: str

    @property
    def where(self) -> str:
        return f"frame {self.index}, line {self.line}"


def frame_texts(path: str, *, keys: LabelKeys = DEFAULT_KEYS) -> Iterator[FrameText]:
    """Every frame of an extended XYZ file (plain or .gz) as checked text. Work is bounded by
    the bytes present: blank lines are skipped in bulk, a count is never looped over past the
    file's end, and a compressed file may not expand beyond :func:`expansion_limit`."""
    line_no = 0
    index = 0
    with _LineReader(path) as src:
        while True:
            line_no += src.skip_blank_lines()
            if not (line := src.readline()):
                break
            line_no += 1
            where = f"frame {index}, line {line_no}"
            comment_at = f"frame {index}, line {line_no + 1}"
            try:
                natoms = atom_count(_text(line), src.bytes_left())
            except HeaderError as exc:
                raise IngestError(str(exc), path=path, where=where) from None
            try:
                if not (comment := src.readline()):
                    raise HeaderError("file ends after the atom count (truncated frame)")
                header = check_comment(_text(comment))
                comment_text = _voigt_comment(header, _text(comment), keys)
            except HeaderError as exc:
                raise IngestError(str(exc), path=path, where=comment_at) from None
            atom_lines = []
            for k in range(natoms):
                if not (more := src.readline()):
                    raise IngestError(f"file ends inside the frame: {natoms} atoms announced,"
                                      f" {k} found (truncated frame)", path=path, where=where)
                try:
                    atom_lines.append(_text(more))
                except HeaderError as exc:
                    raise IngestError(str(exc), path=path,
                                      where=f"frame {index}, line {line_no + 2 + k}") from None
            if (bad := check_atom_lines(atom_lines, header)) is not None:
                raise IngestError(bad[1], path=path, where=f"frame {index}, line {line_no + 2 + bad[0]}")
            yield FrameText(index, line_no, "".join([_text(line), comment_text, *atom_lines]))
            line_no += natoms + 1
            index += 1


def _text(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HeaderError(f"not UTF-8 text ({exc.reason})") from None


def _voigt_comment(header, comment: str, keys: LabelKeys) -> str:
    """The comment line with six-component stress or virial values (in the order
    ``keys.voigt_order`` gives; refused without one) and two-dimensional ``[[...]]`` ones written
    out as 9 numbers, the one form ASE reads; a 3x3 must be symmetric
    (:func:`ingest.labels.tensor_to_voigt`)."""
    from ingest.labels import tensor_to_voigt, voigt_to_full

    for key, raw in header.pairs.items():
        if key.lower() not in _TENSOR_KEYS or raw is None:
            continue
        words, dim = xyzheader.array_words(raw)
        try:
            values = xyzheader.numbers(key, raw, len(words), two_d=True)
            voigt = tensor_to_voigt(values, key, keys.voigt_order)
        except ValueError as exc:
            raise HeaderError(str(exc)) from None
        if len(values) == 6 or dim == 2:  # as 9 numbers, the one form ASE reads
            full = " ".join(repr(float(v)) for v in voigt_to_full(voigt).reshape(9))
            comment = comment.replace(f"{key}={raw}", f'{key}="{full}"', 1)
    return comment


class _LineReader:
    """Lines of a plain or gzip-compressed file, each at most ``MAX_LINE_BYTES``, with blank
    runs skipped a block at a time and the expansion of a compressed file limited."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.size = Path(path).stat().st_size
        self.compressed = path.endswith(".gz")
        self.limit = expansion_limit(self.size) if self.compressed else None
        self.raw = open(path, "rb")  # noqa: SIM115 - closed in __exit__
        self.fh = gzip.open(self.raw) if self.compressed else self.raw
        self.read = 0

    def __enter__(self) -> _LineReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()
        self.raw.close()

    def _count(self, n: int) -> None:
        self.read += n
        if self.limit is not None and self.read > self.limit:
            raise IngestError(_expansion_message(self.size, self.limit), path=self.path)

    def bytes_left(self) -> int | None:
        return None if self.compressed else self.size - self.read

    def readline(self) -> bytes:
        try:
            line = self.fh.readline(MAX_LINE_BYTES + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise IngestError(f"cannot read ({exc})", path=self.path) from exc
        self._count(len(line))
        if len(line) > MAX_LINE_BYTES:
            raise IngestError(f"line is longer than {MAX_LINE_BYTES} bytes", path=self.path)
        return line

    def skip_blank_lines(self) -> int:
        """Consume blank lines; return how many."""
        n = 0
        while True:
            try:
                buf = self.fh.peek(1 << 16)
            except (OSError, EOFError, zlib.error) as exc:
                raise IngestError(f"cannot read ({exc})", path=self.path) from exc
            if not buf:
                return n
            m = _NON_BLANK.search(buf)
            end = len(buf) if m is None else buf.rfind(b"\n", 0, m.start()) + 1
            if end == 0:
                return n
            n += buf.count(b"\n", 0, end)
            self.fh.read(end)
            self._count(end)


# A compressed file may expand this many times its size (real extended XYZ: 3-10x), and at least
# to MIN_EXPANDED_BYTES: beyond that it is a decompression bomb, refused with a message.
MAX_EXPANSION = 100
MIN_EXPANDED_BYTES = 1 << 26


def expansion_limit(compressed_size: int) -> int:
    return max(MAX_EXPANSION * compressed_size, MIN_EXPANDED_BYTES)


def _expansion_message(size: int, limit: int) -> str:
    return (f"expands to more than {limit:,} bytes ({MAX_EXPANSION}x its {size:,} compressed"
            " bytes): refused as a decompression bomb; decompress it yourself if it is real")


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"cannot read extended XYZ ({type(exc).__name__}: {text[:300]})"
