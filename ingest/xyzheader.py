"""An extended XYZ frame's header (the atom-count line and the comment line), checked before
any parser trusts it.

Both readers (the ``extxyz`` C parser and ASE) are handed a frame only after this module has
read its two header lines: the C parser crashes (segfault) on a count it cannot allocate and
wraps counts past 2^32, and both read malformed headers silently wrong (a ``Lattice`` of 8 or
10 numbers, ``pbc="X Y Z"``, a ``Properties`` without ``pos``, a key given twice). What is
refused, and why, is tabled in ``docs/INPUT.md``.

The comment line is split into ``key[=value]`` pairs as the extended XYZ grammar writes them:
a value is a quoted string, a ``{...}`` array, a one- or two-dimensional ``[...]`` array, or a
bare word; a key with no value is a flag.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

# The C parser stores the count in a C int; nothing real comes near it.
MAX_ATOMS = 2**31 - 1
# The shortest atom line a frame can have ("X 0 0 0\n": a species and three coordinates): a
# count larger than the bytes left divided by this cannot be true, whatever the file holds.
MIN_ATOM_LINE_BYTES = 8
# |coordinate| and |lattice component| above this (Å) are not a structure but a broken file
# (they also overflow the structure hash); see docs/INPUT.md.
MAX_LENGTH = 1e6

_COUNT = re.compile(r"\s*\+?(\d+)\s*", re.ASCII)
# (Written as "unrolled loops": Python's regex engine is slow on a per-character alternation.)
_QUOTED = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_KEY = rf'{_QUOTED}|[^\s="{{}}\[\]]+'
_VALUE = (rf'{_QUOTED}|\{{[^{{}}"]*\}}|\[[^\[\]"]*(?:\[[^\[\]"]*\][^\[\]"]*)*\]'
          r'|[^\s"{}\[\]=]+')
_PAIR = re.compile(rf"\s*({_KEY})(?:\s*=\s*({_VALUE}))?(?=\s|$)")


def check_before_c(count: bytes, comment: bytes, bytes_left: int) -> bool:
    """Whether a frame's header lines may go to the C parser: a plain count in range and
    possible in the bytes left, no 2-D ``Lattice``, and a ``Properties`` that parses (a column
    count of 2^31 hangs the parser, a count of 0 or 2^31 atoms crashes it). False sends the
    frame to the ASE path, which refuses it with the reason. Cheap (a few us: it runs on every
    frame); what it leaves out is checked after the parse, by :func:`check_after_c`."""
    n = count.strip()
    if not n.isdigit() or len(n) > 10:
        return False
    natoms = int(n)
    if not 0 < natoms <= MAX_ATOMS or natoms * MIN_ATOM_LINE_BYTES > bytes_left + MIN_ATOM_LINE_BYTES:
        return False
    if b"[[" in comment and _LATTICE_2D.search(comment.decode("utf-8", "replace")):
        return False
    # The one "Properties" of the line, as a key (at the start or after a space): anything
    # else (two of them, a quoted key, spaces around "=") takes the ASE path and its exact split.
    # (One inside a quoted value, with no real key, is harmless: the parser's default is read.)
    raw = None
    if (seen := comment.count(b"Properties")) > 1:
        return False
    if seen:
        i = comment.find(b"Properties=")
        if i < 0 or (i > 0 and not comment[i - 1:i].isspace()):
            return False
        j = comment.find(b" ", i)
        raw = comment[i + 11:j if j >= 0 else len(comment)].strip()
        if raw[:1] in (b'"', b"{", b"["):  # a quoted value may hold spaces: the full regex
            m = _PROPERTIES.search(comment.decode("utf-8", "replace"))
            raw = m.group(1).encode() if m else None
    try:
        _properties_cached(raw)
    except (HeaderError, UnicodeDecodeError):
        return False
    return True


def check_after_c(comment: bytes, keys: dict) -> None:
    """No key twice among what the C parser read (``keys``, its info dict). The parser takes no
    bare flags, so each pair of the line has an ``=``: as many ``=`` as keys means no repeats
    (the common case, one count); otherwise the line is split exactly."""
    if comment.count(b"=") != len(keys) or len({k.lower() for k in keys}) != len(keys):
        pairs(comment.decode("utf-8"))


_LATTICE_2D = re.compile(r"(?:^|\s)Lattice\s*=\s*\[\s*\[")
_PROPERTIES = re.compile(rf"(?:^|\s)Properties\s*=\s*({_VALUE})")


@functools.lru_cache(maxsize=256)
def _properties_cached(raw: bytes | None) -> tuple[tuple[str, str, int], ...]:
    return properties(None if raw is None else raw.decode("utf-8"))
# A number as a file writes it: ASCII decimal, optional exponent (no hex, no "nan", no "1_0",
# no full-width digits, which Python's float() would all accept).
NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_TRUE = {"T", "True", "true", "TRUE", "t"}
_FALSE = {"F", "False", "false", "FALSE", "f"}
_TYPES = {"S", "R", "I", "L"}


class HeaderError(ValueError):
    """A malformed header line; the caller adds the file and the frame."""


def atom_count(line: str, bytes_left: int | None = None) -> int:
    """The atom count of a frame's first line, in range and (when ``bytes_left``, the bytes
    after this line, is known) possible in what the file still holds."""
    m = _COUNT.fullmatch(line)
    if m is None:
        raise HeaderError(f"expected the number of atoms, got {line.strip()[:40]!r}")
    n = int(m.group(1)) if len(m.group(1)) < 20 else MAX_ATOMS + 1
    if n == 0:  # the C parser crashes on it; a structure needs atoms anyway
        raise HeaderError("frame has no atoms (atom count 0)")
    if n > MAX_ATOMS:
        raise HeaderError(f"atom count {m.group(1)[:24]} is out of range (at most {MAX_ATOMS})")
    if bytes_left is not None and n * MIN_ATOM_LINE_BYTES > bytes_left + MIN_ATOM_LINE_BYTES:
        raise HeaderError(f"file ends inside the frame: {n} atoms announced, but only"
                          f" {bytes_left} bytes follow (truncated frame?)")
    return n


def pairs(comment: str) -> dict[str, str | None]:
    """The comment line's ``key -> raw value`` (None for a flag); a key given twice with a value
    (in any case: GPUMD reads ``Energy`` and ``energy`` as one key) or text that is no key-value
    pair is refused."""
    out: dict[str, str | None] = {}
    seen: dict[str, bool] = {}  # lower-cased key -> had a value
    pos, end = 0, len(comment.rstrip())
    while pos < end:
        m = _PAIR.match(comment, pos)
        if m is None or m.end() == pos:
            raise HeaderError(f"cannot read the comment line at column {pos + 1}"
                              f" ({comment[pos:pos + 30].strip()!r})")
        key, value = _unquote(m.group(1)), m.group(2)
        low = key.lower()
        if low in seen and (seen[low] or value is not None):  # a repeated bare flag is harmless
            raise HeaderError(f"key {key!r} is given twice in the comment line")
        seen[low] = seen.get(low, False) or value is not None
        out[key] = value
        pos = m.end()
    return out


def _unquote(text: str) -> str:
    return text[1:-1].replace('\\"', '"') if text.startswith('"') else text


def array_words(raw: str) -> tuple[list[str], int]:
    """The elements of an array value and its dimension (1, or 2 for ``[[...], ...]``)."""
    if raw.startswith("[["):
        return re.split(r"[\s,\[\]]+", raw.strip("[] ")), 2
    if raw[:1] in "\"{[":
        raw = raw[1:-1]
    return [w for w in re.split(r"[\s,]+", raw.strip()) if w], 1


def numbers(key: str, raw: str | None, count: int, *, bound: float | None = None,
            two_d: bool = False) -> list[float]:
    """Exactly ``count`` finite ASCII numbers from a 1-D value (or a 2-D one, read row by row,
    with ``two_d``), none above ``bound`` in size."""
    if raw is None:
        raise HeaderError(f"{key} has no value")
    words, dim = array_words(raw)
    if dim != 1 and not two_d:
        raise HeaderError(f"{key} must be {count} numbers in one row, not a 2-D array")
    if len(words) != count:
        raise HeaderError(f"{key} must be {count} numbers, got {len(words)}")
    bad = next((w for w in words if not NUMBER.fullmatch(w)), None)
    if bad is not None:
        raise HeaderError(f"{key} has {bad[:20]!r} where a number belongs")
    values = [float(w) for w in words]
    if not all(math.isfinite(v) for v in values):
        raise HeaderError(f"{key} has a number beyond the floating-point range")
    if bound is not None and max(map(abs, values)) > bound:
        raise HeaderError(f"{key} has a component above {bound:g} in size")
    return values


def booleans(key: str, raw: str | None) -> list[bool]:
    """Exactly three booleans (``T``/``F``/``True``/``False``) for ``pbc``."""
    if raw is None:
        raise HeaderError(f"{key} has no value")
    words, dim = array_words(raw)
    if dim != 1 or len(words) != 3 or any(w not in _TRUE and w not in _FALSE for w in words):
        raise HeaderError(f"{key} must be three booleans (T or F), got {raw[:40]!r}")
    return [w in _TRUE for w in words]


@dataclass(frozen=True, slots=True)
class Header:
    """What the comment line declares: key-value pairs and the atom lines' columns."""

    pairs: dict[str, str | None]
    columns: tuple[tuple[str, str, int], ...]  # (name, type S/R/I/L, count) in order

    @property
    def n_fields(self) -> int:
        return sum(c for _, _, c in self.columns)


def properties(raw: str | None) -> tuple[tuple[str, str, int], ...]:
    """The ``Properties`` columns; species (or Z) and positions must be among them."""
    if raw is None:  # ASE's default when there is no Properties key
        return (("species", "S", 1), ("pos", "R", 3))
    parts = _unquote(raw).split(":")
    if len(parts) % 3:
        raise HeaderError(f"Properties must be name:type:count triples, got {raw[:60]!r}")
    cols = []
    for name, kind, count in zip(parts[::3], parts[1::3], parts[2::3], strict=True):
        if kind not in _TYPES or not count.isdigit() or not 1 <= int(count) <= 9 or not name:
            raise HeaderError(f"Properties has a bad column {name}:{kind}:{count}")
        cols.append((name, kind, int(count)))
    names = [c[0] for c in cols]
    if len(set(names)) != len(names):
        raise HeaderError("Properties names a column twice")
    if "species" not in names and "Z" not in names:
        raise HeaderError("Properties declares no species (or Z) column")
    if "pos" not in names and "positions" not in names:
        raise HeaderError("Properties declares no pos column")
    if ("pos", "R", 3) not in cols and ("positions", "R", 3) not in cols:
        raise HeaderError("Properties must declare pos as R:3 (three real numbers)")
    return tuple(cols)


def check_comment(comment: str) -> Header:
    """Split and check a comment line: no key twice, ``Lattice`` 9 finite numbers, ``pbc``
    three booleans, ``Properties`` with species and positions."""
    kv = pairs(comment)
    if "Lattice" in kv:
        numbers("Lattice", kv["Lattice"], 9, bound=MAX_LENGTH)
    if "pbc" in kv:
        booleans("pbc", kv["pbc"])
    return Header(kv, properties(kv.get("Properties")))


_FIELD_CHECKS = {"R": NUMBER, "I": re.compile(r"[+-]?\d+", re.ASCII),
                 "L": re.compile("|".join(_TRUE | _FALSE))}


def check_atom_lines(lines: list[str], header: Header) -> tuple[int, str] | None:
    """The first atom line that does not have exactly the declared columns, each of its type,
    and why; None if all do. (ASE reads an extra column into the next property, and Python
    reads "1_0" or full-width digits as numbers.)"""
    n_fields = header.n_fields
    checks = []  # (field index, column name, type, pattern)
    at = 0
    for name, kind, count in header.columns:
        if kind in _FIELD_CHECKS:
            checks.extend((at + k, name, kind, _FIELD_CHECKS[kind]) for k in range(count))
        at += count
    for i, line in enumerate(lines):
        fields = line.split()
        if len(fields) != n_fields:
            declared = ", ".join(f"{n}:{t}:{c}" for n, t, c in header.columns)
            return i, f"atom line has {len(fields)} fields where Properties declares {n_fields} ({declared})"
        for k, name, kind, rx in checks:
            if not rx.fullmatch(fields[k]):
                word = fields[k][:20]
                if kind == "R" and word.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                    return i, f"{name} contains NaN or inf ({word!r})"
                what = {"R": "a number", "I": "an integer", "L": "T or F"}[kind]
                return i, f"{name} has {word!r} where {what} belongs"
    return None
