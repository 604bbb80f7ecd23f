"""Physical properties (elastic constants, vacancy/surface/stacking-fault energies, EOS points, ...).

Documented table (CSV, or JSON: a list of objects, or ``{"properties": [...]}``), one value a row:

==============  ===========================================================================
``material``    e.g. ``Cu``, ``MoNbTaVW``
``property``    the kind, e.g. ``C11``, ``vacancy_formation_energy``, ``stacking_fault_energy``
``key``         optional: what distinguishes values of one kind (a surface ``(111)``, a path
                point ``path0/05``, a volume)
``value``       a finite number
``unit``        e.g. ``GPa``, ``eV``, ``J/m^2``
``source``      a model name or a level-of-theory name
``source_type`` optional: ``model`` or ``level_of_theory``; needed when the source is not stored yet
``structure``   optional: the hash of a stored structure the value belongs to
==============  ===========================================================================

Readers for the UNEP-v1 reference files (``eos/data.json``, ``stacking_fault/data.json``, the
``ref.xyz`` labels, and a model's prediction fixture) live in :mod:`ingest.unep_properties`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from ingest.loader import IngestSummary, Loader, ingest_run
from ingest.writers.conflicts import with_retries
from ingest.textio import DuplicateKey, no_duplicate_keys, reader_guard, strict_float, text_errors
from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import IngestError, missing_file
from warehouse.hashing import sha256_bytes, sha256_file
from warehouse.names import BadName, check_name

SOURCE_TYPES = ("model", "level_of_theory")
UNEP_LEVEL = "VASP-PBE (UNEP-v1 reference)"
UNEP_MODEL = "unep-v1"


@dataclass(slots=True)
class PropertyRecord:
    material: str
    property: str
    key: str | None
    value: float
    unit: str | None
    source: str
    source_type: str | None = None  # model | level_of_theory | None (resolve by name)
    structure: str | None = None  # structure hash
    extra: dict[str, Any] = field(default_factory=dict)


def _record(row: dict[str, Any], path: str, where: str) -> PropertyRecord:
    missing = [k for k in ("material", "property", "value", "source") if row.get(k) in (None, "")]
    if missing:
        raise IngestError(f"missing {', '.join(missing)}", path=path, where=where)
    if None in row:  # csv.DictReader's key for values beyond the header
        raise IngestError("more values than the header names", path=path, where=where)
    value = strict_float(row["value"], "value", path=path, where=where)
    st = (row.get("source_type") or None)
    if st is not None and st not in SOURCE_TYPES:
        raise IngestError(f"source_type {st!r}: use model or level_of_theory", path=path, where=where)
    known = {"material", "property", "key", "value", "unit", "source", "source_type", "structure"}
    extra = {k: v for k, v in row.items() if k not in known and v not in (None, "")}
    key = str(row["key"]) if row.get("key") not in (None, "") else None
    try:  # names as every other name is checked (warehouse.names), to their columns' widths
        material = check_name(str(row["material"]), what="material", max_length=_width("material"))
        prop = check_name(str(row["property"]), what="property", max_length=_width("property"))
        key = None if key is None else check_name(key, what="key", max_length=_width("key"))
    except BadName as exc:
        raise IngestError(str(exc), path=path, where=where) from None
    return PropertyRecord(material, prop, key, value, row.get("unit") or None, str(row["source"]),
                          st, row.get("structure") or None, extra)


def _width(column: str) -> int:
    """The width of a ``properties`` column, from the schema (``warehouse.models.Property``)."""
    return m.Property.__table__.c[column].type.length


@reader_guard
def parse_properties_csv(path: str | Path) -> Iterator[PropertyRecord]:
    path = str(path)
    with open(path, newline="", encoding="utf-8") as fh, text_errors(path, reader := csv.DictReader(fh)):
        for row in reader:
            yield _record(row, path, f"line {reader.line_num}")


@reader_guard
def parse_properties_json(path: str | Path) -> Iterator[PropertyRecord]:
    path = str(path)
    data = _load_json(path)
    rows = data.get("properties") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise IngestError("expected a list of property objects (or {\"properties\": [...]})", path=path)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise IngestError("not an object", path=path, where=f"item {i}")
        yield _record(row, path, f"item {i}")


def _load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh, object_pairs_hook=no_duplicate_keys)
    except DuplicateKey as exc:
        raise IngestError(f"not valid JSON ({exc})", path=path) from None
    except json.JSONDecodeError as exc:
        raise IngestError(f"not valid JSON ({exc.msg})", path=path, where=f"line {exc.lineno}") from exc
    except UnicodeDecodeError as exc:
        raise IngestError(f"not UTF-8 text ({exc.reason})", path=path) from None
    except RecursionError:
        raise IngestError("not valid JSON (nested too deeply)", path=path) from None


def _numbers(values: Any, path: str, where: str) -> list[float]:
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
        raise IngestError("expected a list of numbers", path=path, where=where)
    if not all(math.isfinite(v) for v in values):
        raise IngestError("NaN or inf", path=path, where=where)
    return [float(v) for v in values]


def detect_properties_format(path: str | Path) -> str:
    p = Path(path)
    if p.is_dir() and (p / "eos" / "ref.xyz").is_file():
        return "unep-reference"
    if p.suffix.lower() == ".csv":
        return "csv"
    if p.suffix.lower() == ".npz":
        return "unep-predictions"
    if p.suffix.lower() != ".json":
        raise IngestError("cannot tell the format: pass --format (csv, json, unep-eos,"
                          " unep-stacking-fault, unep-reference, unep-predictions)", path=str(path))
    data = _load_json(str(p))
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        first = next(iter(data.values()))
        if {"volume", "DFT", "NEP"} <= set(first):
            return "unep-eos"
        if all(isinstance(v, dict) and {"DFT", "NEP"} <= set(v) for v in first.values()):
            return "unep-stacking-fault"
    return "json"


def _readers() -> dict:
    from ingest import unep_properties as unep

    return {"csv": parse_properties_csv, "json": parse_properties_json,
            "unep-eos": unep.parse_unep_eos, "unep-stacking-fault": unep.parse_unep_stacking_fault,
            "unep-reference": unep.parse_unep_reference, "unep-predictions": unep.parse_unep_predictions}


def _reader_options(fmt: str, path: str, model: str | None, reference: str,
                    ref_dir: str | Path | None) -> dict[str, Any]:
    if fmt in ("unep-eos", "unep-stacking-fault"):
        return {"model": model or UNEP_MODEL, "reference": reference}
    if fmt == "unep-reference":
        return {"reference": reference}
    if fmt == "unep-predictions":
        return {"model": model or Path(path).stem, "ref_dir": ref_dir}
    return {}


def _source_sha(path: str) -> str:
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    digests = "".join(sha256_file(f) for f in sorted(p.glob("*/ref.xyz")))
    return sha256_bytes(digests.encode())


def _source_ids(ld: Loader, rec: PropertyRecord, path: str) -> tuple[int | None, int | None]:
    st = rec.source_type
    if st is None:
        if ld.names.model_id(rec.source) is not None:
            st = "model"
        elif ld.names.level_id(rec.source) is not None:
            st = "level_of_theory"
        else:
            raise IngestError(f"source {rec.source!r} is neither a stored model nor a level of"
                              " theory; add a source_type column (model or level_of_theory)",
                              path=path)
    if st == "model":
        return ld.model(rec.source), None
    return None, ld.level_of_theory(rec.source)


def ingest_properties(
    wh: Warehouse,
    path: str | Path,
    *,
    fmt: str | None = None,
    model: str | None = None,
    reference: str = UNEP_LEVEL,
    ref_dir: str | Path | None = None,
    argv: list[str] | None = None,
) -> IngestSummary:
    """Store the properties of ``path``; values already stored for the same source are skipped."""
    path = str(path)
    if not Path(path).exists():
        raise missing_file(path)
    fmt = fmt or detect_properties_format(path)
    readers = _readers()
    if fmt not in readers:
        raise IngestError(f"unknown format {fmt!r}; known: {', '.join(readers)}", path=path)
    records = list(readers[fmt](path, **_reader_options(fmt, path, model, reference, ref_dir)))
    if not records:
        raise IngestError("no properties", path=path)
    source_sha = _source_sha(path)

    def attempt(_: int) -> IngestSummary:
        with ingest_run(wh, kind="properties", source=path, source_sha256=source_sha,
                        argv=argv) as ld:
            # "already stored" is decided by reading every property (no unique key spans the
            # identity): concurrent property ingests queue on this lock before reading
            ld.names.lock("properties")
            seen = {(p.material, p.property, p.key, p.model_id, p.level_of_theory_id)
                    for p in ld.s.scalars(select(m.Property))}
            for rec in records:
                model_id, level_id = _source_ids(ld, rec, path)
                ident = (rec.material, rec.property, rec.key, model_id, level_id)
                if ident in seen:
                    ld.summary.seen("properties")
                    continue
                seen.add(ident)
                ld.s.add(m.Property(
                    material=rec.material, property=rec.property, key=rec.key, value=rec.value,
                    unit=rec.unit, model_id=model_id, level_of_theory_id=level_id,
                    structure_id=_structure_id(ld, rec.structure, path), extra=rec.extra or None,
                    ingest_run_id=ld.run.id))
                ld.summary.add("properties")
            ld.s.flush()
        return ld.summary

    return with_retries(attempt, what=path)


def _structure_id(ld: Loader, structure_hash: str | None, path: str) -> int | None:
    if structure_hash is None:
        return None
    sid = ld.names.structure_id(structure_hash)
    if sid is None:
        raise IngestError(f"no stored structure with hash {structure_hash!r}; ingest it first",
                          path=path)
    return sid
