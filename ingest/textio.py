"""Reading text tables (CSV, numeric columns) without trusting them, for every reader.

Each reader validates its own content; this module holds what they share: decoding and CSV
errors turned into a one-line :class:`IngestError` naming the file and line, a strict number
(ASCII decimal: Python's ``float()`` also reads ``"1_0"``, full-width digits, ``"nan"`` and
``"infinity"``), and :func:`reader_guard`, the last line of defence that turns an unexpected
exception inside a reader into one line naming the file (each such case is a defect, fixed at
its cause when found: ``tests/test_fuzz.py`` hunts them).
"""

from __future__ import annotations

import csv
import functools
import inspect
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from warehouse.errors import IngestError, WarehouseError

NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)

F = TypeVar("F", bound=Callable[..., Any])


def strict_float(text: Any, what: str, *, path: str, where: str) -> float:
    """A finite number written in ASCII decimal; anything else is refused, naming ``what``."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise IngestError(f"{what} {str(text)[:40]!r} is not a number", path=path, where=where)
    if isinstance(text, str) and not NUMBER.fullmatch(text):
        raise IngestError(f"{what} {text[:40]!r} is not a number", path=path, where=where)
    value = float(text)
    if not math.isfinite(value):
        raise IngestError(f"{what} is NaN or inf", path=path, where=where)
    return value


class DuplicateKey(ValueError):
    """A JSON object names a key twice (json keeps the last silently)."""


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for :func:`json.load`: refuse an object that names a key twice."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DuplicateKey(f"key {key!r} is given twice in one object")
    return out


def load_yaml(text: str) -> Any:
    """:func:`yaml.safe_load` that refuses a mapping naming a key twice (PyYAML keeps the last
    silently), with a ``yaml.YAMLError`` whose ``problem_mark`` is the second key's place."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *base" may be overridden
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: the base constructor says so
                    break
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice in one mapping",
                        key_node.start_mark)
            return super().construct_mapping(node, deep=deep)

    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader


@contextmanager
def text_errors(path: str, reader: Any = None) -> Iterator[None]:
    """Decoding and CSV errors inside the block as one-line errors naming the file and, with a
    ``csv`` reader, the line."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise IngestError(f"not UTF-8 text ({exc.reason})", path=path,
                          where=_line(reader, 1)) from None
    except csv.Error as exc:
        raise IngestError(f"not a readable CSV table ({exc})", path=path,
                          where=_line(reader)) from None


def _line(reader: Any, extra: int = 0) -> str | None:
    n = getattr(reader, "line_num", None)
    return None if n is None else f"line {n + extra}"


def reader_guard(fn: F) -> F:
    """Any exception other than a :class:`WarehouseError` escaping the reader ``fn`` (whose
    first argument is the path) becomes an :class:`IngestError` naming the file, so a user
    never sees a traceback and the ingest's transaction is undone as for any bad input. Works
    for plain functions and generators."""
    def convert(exc: Exception, path: Any) -> IngestError:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        err = IngestError(f"cannot read this file ({type(exc).__name__}: {first}); this is a"
                          " defect of the reader, please report it", path=str(path))
        err.unexpected = True  # type: ignore[attr-defined]
        return err

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(path, *args, **kwargs):
            try:
                yield from fn(path, *args, **kwargs)
            except (WarehouseError, GeneratorExit, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - see the docstring
                raise convert(exc, path) from exc
        return gen  # type: ignore[return-value]

    @functools.wraps(fn)
    def plain(path, *args, **kwargs):
        try:
            return fn(path, *args, **kwargs)
        except WarehouseError:
            raise
        except Exception as exc:  # noqa: BLE001 - see the docstring
            raise convert(exc, path) from exc
    return plain  # type: ignore[return-value]
