"""Library entry points behind ``warehouse ingest ...``: pick the reader, run the loader."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from ingest import gpumd
from ingest.asedb import parse_ase_db
from ingest.atoms import DEFAULT_KEYS, PREDICTION_KEYS, LabelKeys
from ingest.extxyz import ExtxyzReader, parse_extxyz
from ingest.formats import detect_format
from ingest.loader import IngestSummary, ingest_run
from ingest.writers.conflicts import with_retries
from ingest.mlearn import parse_mlearn_json
from ingest.pickles import check_trust, parse_pickle
from ingest.predictions import checked_prediction_batches
from ingest.vasp import parse_vasp, read_vasp_settings
from warehouse.core import Warehouse
from warehouse.errors import IngestError, missing_file
from warehouse.hashing import sha256_file
from warehouse.records import Frame

Parser = Callable[[str], Iterator[Frame]]

STRUCTURE_READERS: dict[str, Parser] = {
    "extxyz": parse_extxyz,
    "mlearn-json": parse_mlearn_json,
    "vasp": parse_vasp,
    "ase-db": parse_ase_db,
    "pickle": parse_pickle,
}


def ingest_structures(
    wh: Warehouse,
    path: str | Path,
    *,
    dataset: str,
    level_of_theory: str | None = None,
    subset: str | None = None,
    split: str | None = None,
    fmt: str | None = None,
    trust_pickle: bool = False,
    argv: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    reader: ExtxyzReader | None = None,
    voigt_order: tuple[str, ...] | None = None,
) -> IngestSummary:
    """Store the structures of ``path`` in ``dataset`` with their labels as references.

    ``progress(n_structures, n_atoms)`` is called after each stored batch. ``reader`` is the
    :class:`ExtxyzReader` of ``path`` if the caller began reading earlier (the CLI does, before
    it imports the catalog machinery); it is closed here.

    VASP outputs name their own level of theory (e.g. ``VASP-PBE-520eV``) unless one is given.
    A pickle is read only with ``trust_pickle`` (unpickling can run arbitrary code).
    ``voigt_order`` is the order of six-number stress or virial values in an extended XYZ file
    (refused without it).
    """
    path = str(path)
    if not Path(path).is_file():
        raise missing_file(path)
    fmt = fmt or detect_format(path)
    if fmt not in STRUCTURE_READERS:
        raise IngestError(f"unknown format {fmt!r}; known: {', '.join(STRUCTURE_READERS)}", path=path)
    if fmt != "extxyz":
        if reader is not None:
            reader.close()
        return with_retries(lambda _: _ingest_frames(
            wh, path, fmt, dataset=dataset, level_of_theory=level_of_theory, subset=subset,
            split=split, trust_pickle=trust_pickle, argv=argv, progress=progress), what=path)

    keys = DEFAULT_KEYS if voigt_order is None else replace(DEFAULT_KEYS, voigt_order=voigt_order)

    def attempt(n: int) -> IngestSummary:
        # the columnar reader (no per-frame records) in a child process, ahead of this one's
        # writes; a retry reads the file again
        with (reader if n == 0 and reader is not None else ExtxyzReader(path, keys=keys)) as stream:
            sha = stream.sha256()  # binary data or an over-long line is refused before anything
            with ingest_run(wh, kind="structures", source=path, source_sha256=sha, argv=argv) as ld:
                level = ld.level_of_theory(level_of_theory)
                ds = ld.dataset(dataset, level)
                ld.add_batches(stream, dataset_id=ds, level_id=level, subset=subset, split=split,
                               progress=progress)
        return ld.summary

    try:
        return with_retries(attempt, what=path)
    finally:
        if reader is not None:
            reader.close()  # closed already unless the first attempt failed before using it


def _ingest_frames(wh: Warehouse, path: str, fmt: str, *, dataset: str,
                   level_of_theory: str | None, subset: str | None, split: str | None,
                   trust_pickle: bool, argv: list[str] | None,
                   progress: Callable[[int, int], None] | None) -> IngestSummary:
    """Formats read frame by frame (ASE, JSON, pickles): validated frames into batches here."""
    if fmt == "pickle":
        check_trust(path, trust_pickle)  # refuse before anything is opened or recorded
    level_attrs: dict = {}
    if fmt == "vasp":
        settings = read_vasp_settings(path)
        level_of_theory = level_of_theory or settings.name()
        level_attrs = settings.attrs()
    sha = sha256_file(path)
    with ingest_run(wh, kind="structures", source=path, source_sha256=sha, argv=argv) as ld:
        level = ld.level_of_theory(level_of_theory, **level_attrs)
        ds = ld.dataset(dataset, level)
        frames = (parse_pickle(path, trust=True) if fmt == "pickle"
                  else STRUCTURE_READERS[fmt](path))
        ld.add_frames(frames, dataset_id=ds, level_id=level, path=path, subset=subset,
                      split=split, progress=progress)
    return ld.summary


def ingest_predictions(
    wh: Warehouse,
    path: str | Path,
    *,
    model: str,
    keys: LabelKeys = PREDICTION_KEYS,
    argv: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IngestSummary:
    """Store ``model``'s predictions from an extended XYZ file, matched to stored structures.

    The model is registered on first use (``warehouse model add`` records its metadata).
    Structures not in the warehouse make the whole file refused, with their count and the first
    examples. ``progress(n_structures, n_atoms)`` is called after each stored batch.
    """
    path = str(path)
    if not Path(path).is_file():
        raise missing_file(path)

    def attempt(_: int) -> IngestSummary:
        # the columnar reader in a child process, ahead of the writes, as for structures; a
        # retry reads the file again
        with ExtxyzReader(path, keys=keys) as stream:
            sha = stream.sha256()
            with ingest_run(wh, kind="predictions", source=path, source_sha256=sha,
                            argv=argv) as ld:
                model_id = ld.model(model)
                ld.add_prediction_batches(
                    model_id, checked_prediction_batches(stream, path, keys=keys), path=path,
                    progress=progress)
        return ld.summary

    return with_retries(attempt, what=path)


def ingest_gpumd(
    wh: Warehouse,
    folder: str | Path,
    *,
    model: str,
    dataset: str,
    level_of_theory: str | None = None,
    xyz: str | Path | None = None,
    argv: list[str] | None = None,
    voigt_order: tuple[str, ...] | None = None,
) -> IngestSummary:
    """Store a GPUMD ``nep`` folder's predictions (and its structures, if new) for ``model``.

    ``xyz`` names the structure file for a folder that has none (``prediction 1`` runs);
    ``loss.out``, when present, is stored as the model's training record. ``voigt_order`` is
    the order of six-number virials in the structure file (refused without it).
    """
    folder = Path(folder)
    splits = gpumd.find_splits(folder, xyz)
    keys = DEFAULT_KEYS if voigt_order is None else replace(DEFAULT_KEYS, voigt_order=voigt_order)
    parsed = {split: gpumd.parse_gpumd_split(folder, split, xyz, keys=keys) for split in splits}
    loss = gpumd.read_loss(folder / "loss.out") if (folder / "loss.out").is_file() else None
    source_sha = sha256_file(folder / f"energy_{splits[0]}.out")

    def attempt(_: int) -> IngestSummary:
        with ingest_run(wh, kind="gpumd", source=str(folder), source_sha256=source_sha,
                        argv=argv) as ld:
            level = ld.level_of_theory(level_of_theory)
            ds = ld.dataset(dataset, level)
            model_id = ld.model(model, family="NEP", framework="GPUMD")
            for split, (frames, predictions) in parsed.items():
                xyz_path = str(xyz) if xyz else str(folder / f"{split}.xyz")
                ld.add_frames(frames, dataset_id=ds, level_id=level, path=xyz_path, split=split)
                ld.add_predictions(model_id, predictions, path=str(folder / f"energy_{split}.out"))
            if loss is not None:
                _add_training_record_once(ld, model_id, "gpumd-loss", *loss)
        return ld.summary

    return with_retries(attempt, what=str(folder))


def _add_training_record_once(ld, model_id: int, source: str, table, summary: dict) -> None:
    """Re-ingesting the same folder must not store its loss log twice."""
    from sqlalchemy import select

    from warehouse import models as m

    ld.names.lock("training", model_id, source)  # no unique key: concurrent ingests queue here
    have = ld.s.scalars(select(m.TrainingRecord.summary).where(
        m.TrainingRecord.model_id == model_id, m.TrainingRecord.source == source))
    if any(h == summary for h in have):
        ld.summary.seen("training records")
        return
    ld.add_training_record(model_id, source, table, summary)
