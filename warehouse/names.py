"""The one rule for names a user gives to things (datasets, models, levels of theory, ensembles,
MD systems, ...): checked wherever a name enters, so that every command refuses the same names
with the same message instead of storing an empty name or failing on a database limit.

A name is kept exactly as given (no silent stripping: ``" pbte"`` stored beside ``"pbte"`` would
be two datasets nobody can tell apart in a table), so leading or trailing blanks are refused.
"""

from __future__ import annotations

import unicodedata

from warehouse.errors import WarehouseError

# The catalog's name columns are VARCHAR(255); PostgreSQL refuses longer values with a traceback.
MAX_NAME_LENGTH = 255


class BadName(WarehouseError):
    """A name that cannot be stored: empty, too long, blanks at its ends, control characters."""


def check_name(name: object, *, what: str = "name", max_length: int = MAX_NAME_LENGTH) -> str:
    """``name`` if it is usable as the name of a ``what`` (e.g. "dataset"); else :class:`BadName`.

    Usable: a string, not empty or blank, at most ``max_length`` characters (its column's
    width), without leading or trailing whitespace and without control characters (newlines,
    tabs, escapes break every table).
    """
    if not isinstance(name, str):
        raise BadName(f"{what} name must be text, not {type(name).__name__}")
    shown = repr(name) if len(name) <= 40 else repr(name[:40]) + "..."
    if not name.strip():
        raise BadName(f"{what} name {shown} is empty; give a name with letters or digits")
    if len(name) > max_length:
        raise BadName(f"{what} name {shown} has {len(name)} characters; at most"
                      f" {max_length} are allowed")
    if name != name.strip():
        raise BadName(f"{what} name {shown} starts or ends with blanks; remove them")
    for i, ch in enumerate(name):
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            raise BadName(f"{what} name {shown} has a control character ({ch!r}) at position"
                          f" {i + 1}; use printable characters only")
    return name


def check_optional_name(name: str | None, *, what: str = "name") -> str | None:
    """:func:`check_name` for a name that may be absent."""
    return None if name is None else check_name(name, what=what)
