"""Library entry points behind ``warehouse ingest ...``: pick the reader, run the loader."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from ingest import gpumd
from ingest.extxyz import parse_extxyz, scan_file
from ingest.loader import IngestSummary, ingest_run
from ingest.mlearn import parse_mlearn_json
from warehouse.core import Warehouse
from warehouse.errors import IngestError
from warehouse.hashing import sha256_file
from warehouse.records import Frame

Parser = Callable[[str], Iterator[Frame]]

STRUCTURE_READERS: dict[str, Parser] = {
    "extxyz": parse_extxyz,
    "mlearn-json": parse_mlearn_json,
}


def detect_format(path: str | Path) -> str:
    """Name of the reader for ``path`` from its name (compression suffixes ignored)."""
    name = Path(path).name.lower()
    for suffix in (".gz", ".bz2", ".xz"):
        name = name.removesuffix(suffix)
    if name.endswith((".xyz", ".extxyz")):
        return "extxyz"
    if name.endswith(".json"):
        return "mlearn-json"
    raise IngestError(
        "cannot tell the format from the file name; pass --format "
        f"({', '.join(STRUCTURE_READERS)})",
        path=str(path),
    )


def ingest_structures(
    wh: Warehouse,
    path: str | Path,
    *,
    dataset: str,
    level_of_theory: str | None = None,
    subset: str | None = None,
    split: str | None = None,
    fmt: str | None = None,
    argv: list[str] | None = None,
) -> IngestSummary:
    """Store the structures of ``path`` in ``dataset`` with their labels as references."""
    path = str(path)
    if not Path(path).is_file():
        raise IngestError("no such file", path=path)
    fmt = fmt or detect_format(path)
    if fmt not in STRUCTURE_READERS:
        raise IngestError(f"unknown format {fmt!r}; known: {', '.join(STRUCTURE_READERS)}", path=path)
    sha = scan_file(path) if fmt == "extxyz" else sha256_file(path)
    with ingest_run(wh, kind="structures", source=path, source_sha256=sha, argv=argv) as ld:
        level = ld.level_of_theory(level_of_theory)
        ds = ld.dataset(dataset, level)
        ld.add_frames(STRUCTURE_READERS[fmt](path), dataset_id=ds, level_id=level, path=path,
                      subset=subset, split=split)
    return ld.summary


def ingest_gpumd(
    wh: Warehouse,
    folder: str | Path,
    *,
    model: str,
    dataset: str,
    level_of_theory: str | None = None,
    argv: list[str] | None = None,
) -> IngestSummary:
    """Store a GPUMD ``nep`` folder's predictions (and its structures, if new) for ``model``."""
    folder = Path(folder)
    splits = gpumd.find_splits(folder)
    parsed = {split: gpumd.parse_gpumd_split(folder, split) for split in splits}
    source_sha = sha256_file(folder / f"energy_{splits[0]}.out")
    with ingest_run(wh, kind="gpumd", source=str(folder), source_sha256=source_sha, argv=argv) as ld:
        level = ld.level_of_theory(level_of_theory)
        ds = ld.dataset(dataset, level)
        model_id = ld.model(model, family="NEP", framework="GPUMD")
        for split, (frames, predictions) in parsed.items():
            ld.add_frames(frames, dataset_id=ds, level_id=level, path=str(folder / f"{split}.xyz"),
                          split=split)
            ld.add_predictions(model_id, predictions, path=str(folder / f"energy_{split}.out"))
    return ld.summary
