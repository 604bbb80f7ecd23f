"""Catalog tables (SQLAlchemy 2 declarative models).

The migrations in ``migrations/versions`` are the truth of the schema; these classes must agree with
them (a test runs alembic's autogenerate comparison on both engines). Units are stored, never
converted at query time: energies in eV (total per structure), forces in eV/Å, stresses in GPa with
ASE's sign (positive = tensile) in Voigt order xx yy zz yz xz xy, lengths in Å, times in seconds
unless a column name says otherwise. Missing labels are NULL.

Per-atom arrays live in the Parquet lake; a row that owns such arrays points at a ``lake_files``
row, whose sha256 is recorded in the same transaction that writes the row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite's INTEGER PRIMARY KEY is its rowid only when spelled INTEGER, so big ids use a variant.
BigId = BigInteger().with_variant(Integer(), "sqlite")

VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


def _fk(target: str, *, nullable: bool = False, ondelete: str | None = None) -> Any:
    return mapped_column(
        ForeignKey(target, ondelete=ondelete), nullable=nullable, index=True
    )


class IngestRun(Base):
    """Provenance of one ingest (or evaluate) command: what was read, by whom, with what."""

    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    source_uri: Mapped[str | None] = mapped_column(Text)
    source_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    argv: Mapped[list[Any] | None] = mapped_column(JSON)
    user: Mapped[str | None] = mapped_column(String(128))
    host: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), index=True)  # running | ok | failed
    warehouse_version: Mapped[str] = mapped_column(String(32))
    library_versions: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    message: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)


class LakeFile(Base):
    """A Parquet file of the array lake, by path relative to the lake root."""

    __tablename__ = "lake_files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    n_rows: Mapped[int] = mapped_column(BigInteger)
    n_bytes: Mapped[int] = mapped_column(BigInteger)
    ingest_run_id: Mapped[int | None] = _fk("ingest_runs.id", nullable=True)


class LevelOfTheory(Base):
    """A DFT (or other reference) setting: code, functional, cutoff, k-points, ..."""

    __tablename__ = "levels_of_theory"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    code: Mapped[str | None] = mapped_column(String(64))
    code_version: Mapped[str | None] = mapped_column(String(64))
    functional: Mapped[str | None] = mapped_column(String(64))
    cutoff_ev: Mapped[float | None] = mapped_column(Float)
    kpoint_density: Mapped[str | None] = mapped_column(String(128))
    pseudopotentials: Mapped[str | None] = mapped_column(String(255))
    spin: Mapped[str | None] = mapped_column(String(64))
    dispersion: Mapped[str | None] = mapped_column(String(64))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Dataset(Base):
    """A named collection of structures whose labels come from one level of theory."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    level_of_theory_id: Mapped[int] = _fk("levels_of_theory.id")
    created_run_id: Mapped[int | None] = _fk("ingest_runs.id", nullable=True)


class Structure(Base):
    """An atomic configuration, identified by its content hash (see ``warehouse.hashing``)."""

    __tablename__ = "structures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    order_free_hash: Mapped[str] = mapped_column(String(64), index=True)
    n_atoms: Mapped[int] = mapped_column(Integer, index=True)
    formula: Mapped[str] = mapped_column(String(255), index=True)
    elements: Mapped[str] = mapped_column(String(255))  # sorted symbols, comma separated
    n_elements: Mapped[int] = mapped_column(Integer, index=True)
    cell: Mapped[list[Any]] = mapped_column(JSON)  # 3x3, Å, rows are lattice vectors
    pbc: Mapped[str] = mapped_column(String(3))  # e.g. "TTT"
    volume: Mapped[float | None] = mapped_column(Float)  # Å^3, NULL when not fully periodic
    lake_file_id: Mapped[int] = _fk("lake_files.id")
    ingest_run_id: Mapped[int] = _fk("ingest_runs.id")


class StructureElement(Base):
    """Composition of a structure: one row per element present, with its atom count."""

    __tablename__ = "structure_elements"

    structure_id: Mapped[int] = mapped_column(
        ForeignKey("structures.id", ondelete="CASCADE"), primary_key=True
    )
    element: Mapped[str] = mapped_column(String(3), primary_key=True, index=True)
    count: Mapped[int] = mapped_column(Integer)


class DatasetMember(Base):
    """A structure's membership in a dataset, with its split and tags."""

    __tablename__ = "dataset_members"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    structure_id: Mapped[int] = mapped_column(
        ForeignKey("structures.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    split: Mapped[str | None] = mapped_column(String(64), index=True)
    subset: Mapped[str | None] = mapped_column(String(255), index=True)
    config_type: Mapped[str | None] = mapped_column(String(255), index=True)
    weight: Mapped[float | None] = mapped_column(Float)
    source_index: Mapped[int | None] = mapped_column(Integer)  # frame number in the source file
    ingest_run_id: Mapped[int] = _fk("ingest_runs.id")


class Reference(Base):
    """Reference (DFT) labels of a structure at one level of theory."""

    __tablename__ = "references"
    __table_args__ = (UniqueConstraint("structure_id", "level_of_theory_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    structure_id: Mapped[int] = _fk("structures.id")
    level_of_theory_id: Mapped[int] = _fk("levels_of_theory.id")
    energy: Mapped[float | None] = mapped_column(Float)  # eV, total
    free_energy: Mapped[float | None] = mapped_column(Float)
    stress_xx: Mapped[float | None] = mapped_column(Float)  # GPa, ASE sign
    stress_yy: Mapped[float | None] = mapped_column(Float)
    stress_zz: Mapped[float | None] = mapped_column(Float)
    stress_yz: Mapped[float | None] = mapped_column(Float)
    stress_xz: Mapped[float | None] = mapped_column(Float)
    stress_xy: Mapped[float | None] = mapped_column(Float)
    has_forces: Mapped[bool] = mapped_column(Boolean)
    lake_file_id: Mapped[int | None] = _fk("lake_files.id", nullable=True)
    ingest_run_id: Mapped[int] = _fk("ingest_runs.id")


class Model(Base):
    """An interatomic potential: what it is, where it came from, what it was trained on."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    family: Mapped[str | None] = mapped_column(String(64), index=True)
    version: Mapped[str | None] = mapped_column(String(64))
    framework: Mapped[str | None] = mapped_column(String(64))
    n_parameters: Mapped[int | None] = mapped_column(BigInteger)
    training_data: Mapped[str | None] = mapped_column(Text)
    level_of_theory_id: Mapped[int | None] = _fk("levels_of_theory.id", nullable=True)
    conservative: Mapped[bool | None] = mapped_column(Boolean)
    licence: Mapped[str | None] = mapped_column(String(128))
    url: Mapped[str | None] = mapped_column(Text)
    doi: Mapped[str | None] = mapped_column(String(255))
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    # The binding (DESIGN.md, "Comparability and identity"): what the name stands for, so that
    # another parameter file is refused under it. ``calculator`` is the calculator's identity
    # without machine-specific parts (e.g. "nep", "emt", "pkg.mod:factory model=medium");
    # ``parameters`` lists the parameter files as {"file": name, "sha256": ...};
    # ``parameters_sha256`` is their one digest (a single file's own sha256). NULL is unknown,
    # filled in by the first run that knows it (see ingest.binding).
    calculator: Mapped[str | None] = mapped_column(String(255))
    parameters: Mapped[list[Any] | None] = mapped_column(JSON)
    parameters_sha256: Mapped[str | None] = mapped_column(String(64))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_run_id: Mapped[int | None] = _fk("ingest_runs.id", nullable=True)


class TrainingRecord(Base):
    """A model's training log (e.g. GPUMD ``loss.out``): summary here, full table in the lake."""

    __tablename__ = "training_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = _fk("models.id", ondelete="CASCADE")
    source: Mapped[str] = mapped_column(String(64))  # e.g. "gpumd-loss"
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    lake_file_id: Mapped[int | None] = _fk("lake_files.id", nullable=True)
    ingest_run_id: Mapped[int] = _fk("ingest_runs.id")


class Ensemble(Base):
    """A named set of models whose disagreement is used as an uncertainty."""

    __tablename__ = "ensembles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)


class EnsembleMember(Base):
    __tablename__ = "ensemble_members"

    ensemble_id: Mapped[int] = mapped_column(
        ForeignKey("ensembles.id", ondelete="CASCADE"), primary_key=True
    )
    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Prediction(Base):
    """A model's result on one structure: energy, stress, status; forces in the lake."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("model_id", "structure_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = _fk("models.id")
    structure_id: Mapped[int] = _fk("structures.id")
    status: Mapped[str] = mapped_column(String(16), index=True)  # ok | failed
    message: Mapped[str | None] = mapped_column(Text)
    energy: Mapped[float | None] = mapped_column(Float)
    stress_xx: Mapped[float | None] = mapped_column(Float)
    stress_yy: Mapped[float | None] = mapped_column(Float)
    stress_zz: Mapped[float | None] = mapped_column(Float)
    stress_yz: Mapped[float | None] = mapped_column(Float)
    stress_xz: Mapped[float | None] = mapped_column(Float)
    stress_xy: Mapped[float | None] = mapped_column(Float)
    has_forces: Mapped[bool] = mapped_column(Boolean)
    lake_file_id: Mapped[int | None] = _fk("lake_files.id", nullable=True)
    ingest_run_id: Mapped[int] = _fk("ingest_runs.id")


class PredictionError(Base):
    """Per-structure error sums of one prediction against one reference.

    Stored at ingest so that every MAE/RMSE over any grouping is an exact SQL aggregate:
    energy MAE = avg(|energy_diff_per_atom|); force MAE = sum(force_abs_sum) / sum(force_n);
    force RMSE = sqrt(sum(force_sq_sum) / sum(force_n)); stress likewise with ``stress_n``.
    ``force_n`` counts Cartesian components (3 per atom), ``stress_n`` Voigt components (6).
    ``force_norm_*`` hold the per-atom vector-norm variant, counted by ``n_atoms``.
    """

    __tablename__ = "prediction_errors"

    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True
    )
    reference_id: Mapped[int] = mapped_column(
        ForeignKey("references.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    n_atoms: Mapped[int] = mapped_column(Integer)
    energy_diff_per_atom: Mapped[float | None] = mapped_column(Float)  # eV/atom, signed
    force_abs_sum: Mapped[float | None] = mapped_column(Float)  # eV/Å
    force_sq_sum: Mapped[float | None] = mapped_column(Float)  # (eV/Å)^2
    force_n: Mapped[int] = mapped_column(Integer)
    force_norm_sum: Mapped[float | None] = mapped_column(Float)
    force_norm_sq_sum: Mapped[float | None] = mapped_column(Float)
    stress_abs_sum: Mapped[float | None] = mapped_column(Float)  # GPa
    stress_sq_sum: Mapped[float | None] = mapped_column(Float)
    stress_n: Mapped[int] = mapped_column(Integer)


class PredictionElementError(Base):
    """Force error sums of one prediction split by atomic species (per-atom breakdowns)."""

    __tablename__ = "prediction_element_errors"

    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True
    )
    reference_id: Mapped[int] = mapped_column(
        ForeignKey("references.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    element: Mapped[str] = mapped_column(String(3), primary_key=True, index=True)
    n_atoms: Mapped[int] = mapped_column(Integer)
    force_abs_sum: Mapped[float] = mapped_column(Float)
    force_sq_sum: Mapped[float] = mapped_column(Float)
    force_n: Mapped[int] = mapped_column(Integer)


class AtomGrades(Base):
    """Per-atom uncertainty or extrapolation grades (e.g. D-optimality gamma) of a model."""

    __tablename__ = "atom_grades"
    __table_args__ = (UniqueConstraint("model_id", "kind", "structure_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int] = _fk("models.id")
    structure_id: Mapped[int] = _fk("structures.id")
    kind: Mapped[str] = mapped_column(String(64), index=True)
    max_grade: Mapped[float | None] = mapped_column(Float)
    lake_file_id: Mapped[int] = _fk("lake_files.id")
    ingest_run_id: Mapped[int] = _fk("ingest_runs.id")


class Timing(Base):
    """A cost measurement: wall time of a task on stated hardware and software."""

    __tablename__ = "timings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int | None] = _fk("models.id", nullable=True)
    task: Mapped[str] = mapped_column(String(32), index=True)  # md | inference | training
    hardware: Mapped[str | None] = mapped_column(String(255), index=True)  # class label
    device_model: Mapped[str | None] = mapped_column(String(255))
    device_count: Mapped[int | None] = mapped_column(Integer)
    cpu_model: Mapped[str | None] = mapped_column(String(255))
    cpu_cores: Mapped[int | None] = mapped_column(Integer)
    software: Mapped[str | None] = mapped_column(String(128))
    software_version: Mapped[str | None] = mapped_column(String(64))
    precision: Mapped[str | None] = mapped_column(String(32))
    system: Mapped[str | None] = mapped_column(String(255))
    composition: Mapped[str | None] = mapped_column(String(255))
    n_atoms: Mapped[int | None] = mapped_column(BigInteger)
    n_steps: Mapped[int | None] = mapped_column(BigInteger)
    wall_s: Mapped[float | None] = mapped_column(Float)
    peak_memory_mb: Mapped[float | None] = mapped_column(Float)
    atom_steps_per_s: Mapped[float | None] = mapped_column(Float)
    epochs: Mapped[float | None] = mapped_column(Float)  # training: epochs or generations
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ingest_run_id: Mapped[int] = _fk("ingest_runs.id")


class MDRun(Base):
    """A molecular-dynamics run of a model on a system."""

    __tablename__ = "md_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    model_id: Mapped[int | None] = _fk("models.id", nullable=True)
    system: Mapped[str] = mapped_column(String(255), index=True)
    composition: Mapped[str | None] = mapped_column(String(255))
    engine: Mapped[str | None] = mapped_column(String(64))
    engine_version: Mapped[str | None] = mapped_column(String(64))
    ensemble: Mapped[str | None] = mapped_column(String(32))  # NVE | NVT | NPT | shock | ...
    temperature_k: Mapped[float | None] = mapped_column(Float, index=True)
    pressure_gpa: Mapped[float | None] = mapped_column(Float)
    timestep_fs: Mapped[float | None] = mapped_column(Float)
    n_steps: Mapped[int | None] = mapped_column(BigInteger)
    n_atoms: Mapped[int | None] = mapped_column(BigInteger)
    hardware: Mapped[str | None] = mapped_column(String(255))
    label: Mapped[str | None] = mapped_column(String(255))
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ingest_run_id: Mapped[int] = _fk("ingest_runs.id")


class MDSeries(Base):
    """A time series or spatial profile of an MD run, stored as one Parquet file."""

    __tablename__ = "md_series"
    __table_args__ = (UniqueConstraint("md_run_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    md_run_id: Mapped[int] = _fk("md_runs.id", ondelete="CASCADE")
    name: Mapped[str] = mapped_column(String(128))
    columns: Mapped[dict[str, Any]] = mapped_column(JSON)  # column name -> unit
    n_rows: Mapped[int] = mapped_column(BigInteger)
    lake_file_id: Mapped[int] = _fk("lake_files.id")


class MDObservable(Base):
    """A scalar observable of an MD run (energy drift, spall strength, mean temperature, ...)."""

    __tablename__ = "md_observables"
    __table_args__ = (UniqueConstraint("md_run_id", "name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    md_run_id: Mapped[int] = _fk("md_runs.id", ondelete="CASCADE")
    name: Mapped[str] = mapped_column(String(128), index=True)
    value: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(32))
    method: Mapped[str | None] = mapped_column(Text)  # how it was derived, or "reported"
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Property(Base):
    """A physical property of a material, from a model or a level of theory."""

    __tablename__ = "properties"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    material: Mapped[str] = mapped_column(String(255), index=True)
    property: Mapped[str] = mapped_column(String(128), index=True)
    key: Mapped[str | None] = mapped_column(String(255))  # e.g. a path point, a volume, a surface
    value: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(32))
    model_id: Mapped[int | None] = _fk("models.id", nullable=True)
    level_of_theory_id: Mapped[int | None] = _fk("levels_of_theory.id", nullable=True)
    structure_id: Mapped[int | None] = _fk("structures.id", nullable=True)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ingest_run_id: Mapped[int] = _fk("ingest_runs.id")


Index("ix_predictions_model_status", Prediction.model_id, Prediction.status)
Index("ix_properties_material_property", Property.material, Property.property)


# The leaderboard's exact sums, kept by the writers (warehouse/keptsums.py). Group keys are NOT
# NULL so that an additive upsert (INSERT ... ON CONFLICT DO UPDATE) finds its row on both
# engines (a unique key treats NULLs as distinct): ``element`` is '' on whole-structure rows, and a
# member without a subset tag is ``tagged`` false with ``subset`` ''.


class LeaderboardSums(Base):
    """Derived, kept at ingest: per model, dataset, subset, number of elements and element, the
    counts and error sums of the predictions on dataset members with reference labels.

    Rows with ``element`` '' count whole structures; rows with an element count the structures
    containing it (energy, stress) and that species' atoms (forces). Updated in the transaction of
    every ingest that adds predictions, references or members (``warehouse.keptsums``); removed
    with their model or dataset (ON DELETE CASCADE). Never edited by hand.
    """

    __tablename__ = "leaderboard_sums"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True, index=True)
    subset: Mapped[str] = mapped_column(String(255), primary_key=True)
    tagged: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    n_elements: Mapped[int] = mapped_column(Integer, primary_key=True)
    element: Mapped[str] = mapped_column(String(3), primary_key=True)
    n_predicted: Mapped[int] = mapped_column(BigInteger)
    n_failed: Mapped[int] = mapped_column(BigInteger)
    n_energy: Mapped[int] = mapped_column(BigInteger)
    e_abs: Mapped[float | None] = mapped_column(Float)
    e_sq: Mapped[float | None] = mapped_column(Float)
    f_abs: Mapped[float | None] = mapped_column(Float)
    f_sq: Mapped[float | None] = mapped_column(Float)
    f_n: Mapped[int] = mapped_column(BigInteger)
    s_abs: Mapped[float | None] = mapped_column(Float)
    s_sq: Mapped[float | None] = mapped_column(Float)
    s_n: Mapped[int] = mapped_column(BigInteger)
    id_sum: Mapped[int] = mapped_column(BigInteger)
    max_run: Mapped[int | None] = mapped_column(BigInteger)
    # per-atom vector-norm force errors (whole-structure rows only: not stored per element)
    fn_abs: Mapped[float | None] = mapped_column(Float)
    fn_sq: Mapped[float | None] = mapped_column(Float)
    fn_n: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class LeaderboardExpected(Base):
    """Derived, kept at ingest: what is expected per dataset, subset, number of elements and
    element: members with reference labels at the dataset's level of theory (``n_structures``)
    and their atoms (of that species on per-element rows). Keys as in :class:`LeaderboardSums`."""

    __tablename__ = "leaderboard_expected"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    subset: Mapped[str] = mapped_column(String(255), primary_key=True)
    tagged: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    n_elements: Mapped[int] = mapped_column(Integer, primary_key=True)
    element: Mapped[str] = mapped_column(String(3), primary_key=True)
    n_structures: Mapped[int] = mapped_column(BigInteger)
    n_atoms: Mapped[int] = mapped_column(BigInteger)


class CatalogIdentity(Base):
    """The catalog's uuid (one row, id 1): its lake's ``_warehouse.json`` names it, so that a lake
    written by one catalog is refused by every other (``warehouse.identity``)."""

    __tablename__ = "catalog_identity"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
