"""Library entry points behind ``warehouse ingest ...``: pick the reader, run the loader."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from ingest import gpumd
from ingest.asedb import parse_ase_db
from ingest.labels import DEFAULT_KEYS, PREDICTION_KEYS, LabelKeys
from ingest.binding import Binding, bound_model, precheck, versioned_name
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
                level = _level(ld, level_of_theory, dataset)
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
        level = (_level(ld, level_of_theory, dataset) if not level_attrs
                 else ld.level_of_theory(level_of_theory, **level_attrs))
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
    parameters: Sequence[str | Path] = (),
    version: str | None = None,
    force: bool = False,
    argv: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    reader: ExtxyzReader | None = None,
) -> IngestSummary:
    """Store ``model``'s predictions from an extended XYZ file, matched to stored structures.

    The model is registered on first use (``warehouse model add`` records its metadata).
    ``parameters`` are the model's parameter files: they bind an unbound model name, and must
    match a bound one (ingest.binding); a bound model refuses predictions that name none.
    Structures not in the warehouse make the whole file refused, with their count and the first
    examples. A file whose every prediction equals the stored reference labels (the DFT file
    itself, passed by mistake) is refused unless ``force``. ``progress(n_structures, n_atoms)``
    is called after each stored batch. ``reader`` is the :class:`ExtxyzReader` of ``path``
    with ``keys`` if the caller began reading earlier (the CLI does); it is closed here.
    """
    try:
        return _ingest_predictions(wh, str(path), model=model, keys=keys,
                                   parameters=parameters, version=version, force=force,
                                   argv=argv, progress=progress, reader=reader)
    finally:
        if reader is not None:
            reader.close()  # closed already unless the first attempt failed before using it


def _ingest_predictions(wh: Warehouse, path: str, *, model: str, keys: LabelKeys,
                        parameters: Sequence[str | Path], version: str | None, force: bool,
                        argv: list[str] | None, progress: Callable[[int, int], None] | None,
                        reader: ExtxyzReader | None) -> IngestSummary:
    if not Path(path).is_file():
        raise missing_file(path)
    name = versioned_name(model, version)
    binding = Binding.of_files(parameters)
    what = f"this predictions file ({Path(path).name})"
    precheck(wh, name, binding, what=what)

    def attempt(n: int) -> IngestSummary:
        # the columnar reader in a child process, ahead of the writes, as for structures; a
        # retry reads the file again
        with (reader if n == 0 and reader is not None else ExtxyzReader(path, keys=keys)) as stream:
            sha = stream.sha256()
            with ingest_run(wh, kind="predictions", source=path, source_sha256=sha,
                            argv=argv) as ld:
                model_id = bound_model(ld, name, binding, what=what,
                                       **({"version": version} if version else {}))
                ld.add_prediction_batches(
                    model_id, checked_prediction_batches(stream, path, keys=keys), path=path,
                    progress=progress)
                if not force:
                    refuse_copies_of_references(ld, model_id, path=path)
        return ld.summary

    return with_retries(attempt, what=path)


# A prediction "equals" its reference when it differs by less than this: float64 round-off of
# the same numbers written twice, far below any model's error (1e-9 eV/atom, 1e-9 eV/Å).
COPY_TOL = 1e-9


def refuse_copies_of_references(ld, model_id: int, *, path: str) -> None:
    """Refuse this ingest's predictions of ``model_id`` if every one with a reference equals it:
    a zero-error "model" is the reference file passed as predictions, not a result."""
    from sqlalchemy import select

    from warehouse import models as m

    e = m.PredictionError
    rows = ld.s.execute(
        select(e.energy_diff_per_atom, e.force_abs_sum, e.force_n, m.LevelOfTheory.name)
        .join(m.Prediction, m.Prediction.id == e.prediction_id)
        .join(m.Reference, m.Reference.id == e.reference_id)
        .join(m.LevelOfTheory, m.LevelOfTheory.id == m.Reference.level_of_theory_id)
        .where(m.Prediction.model_id == model_id, m.Prediction.ingest_run_id == ld.run.id)
    ).all()
    compared = [r for r in rows if r.energy_diff_per_atom is not None or r.force_n]
    n = len(compared)
    n_same = sum(abs(r.energy_diff_per_atom or 0.0) <= COPY_TOL
                 and (r.force_abs_sum or 0.0) <= COPY_TOL * max(r.force_n, 1) for r in compared)
    level = compared[0].name if compared else None
    if n and n_same == n:
        raise IngestError(
            f"every one of the {n} predictions equals the stored reference labels (level of"
            f" theory {level!r}) to {COPY_TOL:g}: this looks like the reference file itself, not"
            " a model's output, and would enter leaderboards as a zero-error model; nothing was"
            " stored. Pass --force if the predictions really are identical", path=path)


def ingest_gpumd(
    wh: Warehouse,
    folder: str | Path,
    *,
    model: str,
    dataset: str,
    level_of_theory: str | None = None,
    xyz: str | Path | None = None,
    parameters: Sequence[str | Path] = (),
    version: str | None = None,
    argv: list[str] | None = None,
    voigt_order: tuple[str, ...] | None = None,
) -> IngestSummary:
    """Store a GPUMD ``nep`` folder's predictions (and its structures, if new) for ``model``.

    ``xyz`` names the structure file for a folder that has none (``prediction 1`` runs);
    ``loss.out``, when present, is stored as the model's training record. The model name is
    bound to ``parameters``, by default the folder's ``nep.txt`` (ingest.binding). Without a
    ``level_of_theory`` an existing dataset's own is used. ``voigt_order`` is the order of
    six-number virials in the structure file (refused without it).
    """
    folder = Path(folder)
    splits = gpumd.find_splits(folder, xyz)
    keys = DEFAULT_KEYS if voigt_order is None else replace(DEFAULT_KEYS, voigt_order=voigt_order)
    parsed = {split: gpumd.parse_gpumd_split(folder, split, xyz, keys=keys) for split in splits}
    loss = gpumd.read_loss(folder / "loss.out") if (folder / "loss.out").is_file() else None
    source_sha = sha256_file(folder / f"energy_{splits[0]}.out")
    name = versioned_name(model, version)
    if not parameters and (folder / "nep.txt").is_file():
        parameters = [folder / "nep.txt"]  # the model GPUMD trained (or was given) there
    binding = Binding.of_files(parameters)
    what = f"this GPUMD folder ({folder})"
    precheck(wh, name, binding, what=what)

    def attempt(_: int) -> IngestSummary:
        with ingest_run(wh, kind="gpumd", source=str(folder), source_sha256=source_sha,
                        argv=argv) as ld:
            level = _level(ld, level_of_theory, dataset)
            ds = ld.dataset(dataset, level)
            model_id = bound_model(ld, name, binding, what=what, family="NEP", framework="GPUMD",
                                   **({"version": version} if version else {}))
            for split, (frames, predictions) in parsed.items():
                xyz_path = str(xyz) if xyz else str(folder / f"{split}.xyz")
                ld.add_frames(frames, dataset_id=ds, level_id=level, path=xyz_path, split=split)
                ld.add_predictions(model_id, predictions, path=str(folder / f"energy_{split}.out"))
            if loss is not None:
                _add_training_record_once(ld, model_id, "gpumd-loss", *loss)
        return ld.summary

    return with_retries(attempt, what=str(folder))


def _level(ld, level_of_theory: str | None, dataset: str) -> int:
    """The level of theory to store labels under: the one given; else, for an existing dataset,
    its own (a dataset holds one level, so naming it again is not needed); else "unspecified"."""
    if level_of_theory is None:
        from sqlalchemy import select

        from warehouse import models as m

        have = ld.s.scalar(select(m.Dataset.level_of_theory_id).where(m.Dataset.name == dataset))
        if have is not None:
            return have
    return ld.level_of_theory(level_of_theory)


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
