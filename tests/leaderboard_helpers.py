"""Shared set-up of the leaderboard tests: one warehouse per module with real data, and the
independent numpy computation of every metric straight from the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.io import read

from unep_fixtures import fixture_rows, ingest_unep, load_fixture, reference_labels

PBTE = Path("gpumd") / "nep_train_PbTe"
# a third model with predictions left out and failed on purpose (fixture row indices)
GAPPY = "unep-v1-4-4-30"
OMIT = [0, 1, 200]
FAIL = [5, 300]


def load_all(wh, shared: Path) -> None:
    """PbTe (GPUMD's own NEP output) plus the UNEP-v1 sets with three real models."""
    from ingest.api import ingest_gpumd

    ingest_gpumd(wh, shared / PBTE, model="pbte-nep", dataset="pbte")
    ingest_unep(wh, shared, models=("unep-v1", "eam-zhou", GAPPY),
                omit={GAPPY: OMIT}, fail={GAPPY: FAIL})


def metrics_from_diffs(de, df, ds) -> dict[str, float]:
    """DESIGN.md metrics from per-structure energy diffs (eV/atom), stacked force diffs
    (n_atoms x 3, eV/Å) and stacked stress diffs (n x 6, GPa)."""
    de, df, ds = np.asarray(de, float), np.asarray(df, float), np.asarray(ds, float)
    out = {
        "energy_mae": 1000 * np.mean(np.abs(de)), "energy_rmse": 1000 * np.sqrt(np.mean(de**2)),
        "force_mae": 1000 * np.mean(np.abs(df)), "force_rmse": 1000 * np.sqrt(np.mean(df**2)),
        "stress_mae": np.nan, "stress_rmse": np.nan,
    }
    if ds.size:
        out["stress_mae"], out["stress_rmse"] = np.mean(np.abs(ds)), np.sqrt(np.mean(ds**2))
    return out


def pbte_diffs(shared: Path):
    """Per-structure dE, per-atom dF and the species, from train.xyz and GPUMD's .out files."""
    folder = shared / PBTE
    frames = read(folder / "train.xyz", index=":", format="extxyz")
    n = np.array([len(a) for a in frames])
    e_ref = np.array([a.get_potential_energy() for a in frames]) / n
    de = np.loadtxt(folder / "energy_train.out")[:, 0] - e_ref
    f_ref = np.concatenate([a.arrays["force"] for a in frames])
    df = np.loadtxt(folder / "force_train.out")[:, :3] - f_ref
    species = np.concatenate([a.get_chemical_symbols() for a in frames])
    return de, df, species


def unep_diffs(shared: Path, model: str, rows) -> dict[str, list]:
    """Per fixture row: set, element, dE (eV/atom), dF (n x 3), dS (6), n_atoms."""
    d = load_fixture(model)
    out: dict[str, list] = {k: [] for k in ("set", "element", "de", "df", "ds", "n")}
    for r in rows:
        e_ref, f_ref, s_ref = reference_labels(shared, str(d["set"][r]), int(d["frame"][r]))
        n = int(d["n_atoms"][r])
        out["set"].append(str(d["set"][r]))
        out["de"].append((d["energy"][r] - e_ref) / n)
        out["df"].append(d["forces"][d["offsets"][r]:d["offsets"][r + 1]] - f_ref)
        out["ds"].append(d["stress"][r] - s_ref)
        out["n"].append(n)
        from unep_fixtures import reference_atoms

        out["element"].append(reference_atoms(shared, str(d["set"][r]))[int(d["frame"][r])]
                              .get_chemical_symbols()[0])
    return out


def unep_metrics(diffs: dict[str, list], mask=None) -> dict[str, float]:
    idx = range(len(diffs["de"])) if mask is None else np.flatnonzero(mask)
    idx = list(idx)
    return metrics_from_diffs(
        [diffs["de"][i] for i in idx],
        np.concatenate([diffs["df"][i] for i in idx]),
        np.stack([diffs["ds"][i] for i in idx]),
    )


def gappy_rows() -> list[int]:
    return [int(r) for r in fixture_rows() if int(r) not in OMIT + FAIL]
