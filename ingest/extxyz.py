"""Extended XYZ in its real variants (ASE's own, GPUMD's, gzip-compressed).

Two readers give the same frames (a test proves it on every sample file):

* the ``extxyz`` package's C parser (libAtoms/extxyz), about 20x faster than ASE's pure-Python
  reader, used for plain files;
* ASE's ``ase.io.iread``, used for compressed files and as the fallback wherever the C parser
  cannot read a variant: if it fails at frame k, ASE re-reads the file from frame k, so a file
  that either reader can read is read, and an unreadable one is reported by ASE with its frame.

Before parsing, :func:`scan_file` reads the bytes once (it computes the provenance sha256 at the
same time) and refuses binary data and pathologically long lines with the line number.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
import ase.io
import numpy as np

from ingest.atoms import DEFAULT_KEYS, LabelKeys, frame_from_atoms, frame_from_dicts, validate_frame
from warehouse.errors import IngestError
from warehouse.records import Frame

# A comment line longer than this is not a real extended XYZ header (the longest real ones, with
# a 9-component virial, a 9-component stress and a dozen tags, are a few kB).
MAX_LINE_BYTES = 1 << 20
_SCAN_BLOCK = 1 << 22

try:  # the C parser is an optional speed-up; ASE reads everything it reads
    from extxyz import cextxyz as _cx
except Exception:  # pragma: no cover - missing shared library
    _cx = None


def _opener(path: str):
    return gzip.open if path.endswith(".gz") else open


def scan_file(path: str | Path) -> str:
    """Return the file's sha256; refuse NUL bytes and over-long lines, naming the line."""
    path = str(path)
    h = hashlib.sha256()
    line, run = 1, 0  # current line number and the length of the line so far
    try:
        with open(path, "rb") as raw:
            compressed = path.endswith(".gz")
            src = gzip.open(raw) if compressed else raw
            while block := src.read(_SCAN_BLOCK):
                if not compressed:
                    h.update(block)
                buf = np.frombuffer(block, dtype=np.uint8)
                if (nul := np.flatnonzero(buf == 0)).size:
                    where = line + int(np.count_nonzero(buf[: nul[0]] == 10))
                    raise IngestError("binary data (a NUL byte): not a text file",
                                      path=path, where=f"line {where}")
                nl = np.flatnonzero(buf == 10)
                if nl.size == 0:
                    run += len(buf)
                else:
                    lengths = np.diff(nl, prepend=-1) - 1
                    lengths[0] += run
                    longest = int(np.argmax(lengths))
                    if lengths[longest] > MAX_LINE_BYTES:
                        raise IngestError(f"line is longer than {MAX_LINE_BYTES} bytes",
                                          path=path, where=f"line {line + longest}")
                    run = len(buf) - int(nl[-1]) - 1
                    line += nl.size
                if run > MAX_LINE_BYTES:
                    raise IngestError(f"line is longer than {MAX_LINE_BYTES} bytes",
                                      path=path, where=f"line {line}")
            if compressed:
                raw.seek(0)
                while block := raw.read(_SCAN_BLOCK):
                    h.update(block)
    except (OSError, EOFError) as exc:
        if isinstance(exc, IngestError):
            raise
        raise IngestError(f"cannot read ({exc})", path=path) from exc
    return h.hexdigest()


def parse_extxyz(
    path: str | Path, *, reader: str = "auto", validate: bool = True, keys: LabelKeys = DEFAULT_KEYS
) -> Iterator[Frame]:
    """Yield validated frames of an extended XYZ file, one at a time.

    ``reader`` is ``auto`` (C parser for plain files, ASE otherwise), ``c`` or ``ase``. Raises
    :class:`IngestError` naming the file and the frame for anything unreadable or inconsistent
    (a truncated frame, forces of the wrong length, NaN, a periodic frame with no cell).
    """
    path = str(path)
    if not Path(path).is_file():
        raise IngestError("no such file", path=path)
    if Path(path).stat().st_size == 0:
        raise IngestError("file is empty", path=path)
    try:
        yield from _parse(path, reader, validate, keys)
    except IngestError as exc:
        if exc.path is None:  # raised by a converter that does not know the file
            raise IngestError(str(exc), path=path, where=exc.where) from exc
        raise


def _parse(path: str, reader: str, validate: bool, keys: LabelKeys) -> Iterator[Frame]:
    use_c = reader == "c" or (reader == "auto" and _cx is not None and not path.endswith(".gz"))
    index = 0
    if use_c:
        state = {"complete": True}
        for frame in _iter_c(path, state, keys):
            yield validate_frame(frame, path) if validate else frame
            index += 1
        if state["complete"]:
            if index == 0:
                raise IngestError("no frames found", path=path)
            return
    for frame in _iter_ase(path, start=index, keys=keys):
        yield validate_frame(frame, path) if validate else frame
        index += 1
    if index == 0:
        raise IngestError("no frames found", path=path)


def _iter_c(path: str, state: dict[str, bool], keys: LabelKeys) -> Iterator[Frame]:
    """Frames through the C parser; where it cannot go on, sets ``state["complete"]`` false."""
    size = Path(path).stat().st_size
    fp = _cx.cfopen(path, "r")
    index = 0
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
            yield frame_from_dicts(natoms, info, arrays, index, keys)
            index += 1
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
