"""MD questions: the stability (energy-drift) table, observables across ensemble members, series.

All numbers come from stored rows: derived observables were computed at ingest from the series now
in the lake (their ``method`` says how), and :func:`recompute_drift` / :func:`window_stats`
recompute them from the lake over any window with the same functions (``warehouse.mdcalc``).

Statistics across K members (:func:`observable_stats`): mean; standard deviation in the
population form (divide by K, what the reference shock study reports: 0.39 GPa for its five spall
strengths) and in the sample form (divide by K-1: 0.44 GPa), each labelled; relative uncertainty
std/|mean| in percent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import select

from warehouse import models as m
from warehouse.core import Warehouse
from warehouse.errors import NoMatch, NotFound
from warehouse.mdcalc import Drift, WindowStats, calc_energy_drift, calc_member_stats, calc_window_stats

DRIFT_MAX = "energy_drift_max"
DRIFT_SLOPE = "energy_drift_slope"
POSITION_COLUMNS = ("z", "y", "x", "bin")


@dataclass
class MDReport:
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _read(wh: Warehouse, stmt) -> pd.DataFrame:
    with wh.engine.connect() as conn:
        return pd.read_sql(stmt, conn)


def ensemble_models(wh: Warehouse, ensemble: str) -> list[str]:
    """Member model names of ``ensemble``, in id order."""
    with wh.session() as s:
        ens = s.scalar(select(m.Ensemble).where(m.Ensemble.name == ensemble))
        if ens is None:
            raise NotFound(f"no ensemble named {ensemble!r}; `warehouse ensemble add` creates one,"
                           " or pass the members with --model")
        names = s.scalars(
            select(m.Model.name).join(m.EnsembleMember, m.EnsembleMember.model_id == m.Model.id)
            .where(m.EnsembleMember.ensemble_id == ens.id).order_by(m.Model.id)
        ).all()
    if not names:
        raise NoMatch(f"ensemble {ensemble!r} has no members")
    return list(names)


def _members(wh: Warehouse, ensemble: str | None, models: Sequence[str]) -> list[str]:
    if ensemble and models:
        raise NoMatch("pass either an ensemble or a list of models, not both")
    return ensemble_models(wh, ensemble) if ensemble else list(models)


def runs(wh: Warehouse, *, models: Sequence[str] = (), systems: Sequence[str] = (),
         label: str | None = None) -> pd.DataFrame:
    """MD runs with their model name, filtered."""
    r, mo = m.MDRun, m.Model
    stmt = select(r.id.label("md_run_id"), mo.name.label("model"), r.system, r.label, r.engine,
                  r.ensemble, r.temperature_k, r.pressure_gpa, r.timestep_fs, r.n_steps, r.n_atoms,
                  r.hardware, r.extra).outerjoin(mo, mo.id == r.model_id)
    if models:
        stmt = stmt.where(mo.name.in_(list(models)))
    if systems:
        stmt = stmt.where(r.system.in_(list(systems)))
    if label is not None:
        stmt = stmt.where(r.label == label)
    return _read(wh, stmt.order_by(r.id))


def _observables(wh: Warehouse, run_ids: Sequence[int], names: Sequence[str]) -> pd.DataFrame:
    o = m.MDObservable
    stmt = select(o.md_run_id, o.name, o.value, o.unit, o.method, o.extra).where(
        o.md_run_id.in_([int(i) for i in run_ids]), o.name.in_(list(names)))
    return _read(wh, stmt)


def _drift_observables(wh: Warehouse, run_ids: Sequence[int]) -> pd.DataFrame:
    """Drift observables with their name split: ``energy_drift_max@stage3`` -> base, part."""
    o = m.MDObservable
    stmt = select(o.md_run_id, o.name, o.value).where(
        o.md_run_id.in_([int(i) for i in run_ids]),
        o.name.in_([DRIFT_MAX, DRIFT_SLOPE]) | o.name.like(f"{DRIFT_MAX}@%")
        | o.name.like(f"{DRIFT_SLOPE}@%"))
    df = _read(wh, stmt)
    if df.empty:  # str.partition of an empty column has no parts to name
        return df.assign(base=pd.Series(dtype=str), part=pd.Series(dtype=str))
    parts = df["name"].str.partition("@")
    return df.assign(base=parts[0], part=parts[2])


def _no_drift_message(wh: Warehouse, rs: pd.DataFrame) -> str:
    """Why no run has a drift: each run's ensemble, and what else can be asked of them."""
    runs_text = "; ".join(
        f"run {r.md_run_id} ({r.system}{', ' + r.model if r.model else ''}): "
        f"{r.ensemble or 'ensemble unknown'}" for r in rs.head(5).itertuples())
    more = f" and {len(rs) - 5} more" if len(rs) > 5 else ""
    names = sorted(set(_read(wh, select(m.MDObservable.name).where(
        m.MDObservable.md_run_id.in_([int(i) for i in rs["md_run_id"]])))["name"]))
    have = (f"; their observables: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}"
            " (`warehouse md observable NAME`)") if names else ""
    return (f"no energy drift: drift is measured only over an NVE stage with a known atom count,"
            f" and none of the {len(rs)} matching MD runs has one ({runs_text}{more}){have}")


def _status(extra: object) -> str:
    return (extra or {}).get("status", "ok") if isinstance(extra, dict) else "ok"


def drift_table(wh: Warehouse, *, models: Sequence[str] = (), systems: Sequence[str] = ()) -> MDReport:
    """Energy drift per model, system and temperature (meV/atom and meV/atom/ps): stability table.

    A run marked failed at ingest (``--status failed``, e.g. it blew up) is listed with its status
    and whatever drift was stored for it.
    """
    rs = runs(wh, models=models, systems=systems)
    if rs.empty:
        raise NoMatch("no MD runs match these filters; `warehouse ingest md` stores them")
    obs = _drift_observables(wh, rs["md_run_id"])
    rs["status"] = rs["extra"].map(_status)
    keep = rs[rs["md_run_id"].isin(obs["md_run_id"]) | (rs["status"] != "ok")]
    if keep.empty:
        raise NoMatch(_no_drift_message(wh, rs))
    # one row per run and NVE part: "" for the run's one NVE stage, else "stage<k>" or a series
    wide = obs.pivot_table(index=["md_run_id", "part"], columns="base", values="value",
                           aggfunc="first").reset_index()
    table = keep.merge(wide, on="md_run_id", how="left")
    for col in (DRIFT_MAX, DRIFT_SLOPE):
        if col not in table:
            table[col] = np.nan
    table["part"] = table["part"].replace("", None)
    table["drift_max_mev_per_atom"] = 1000 * table[DRIFT_MAX]
    table["drift_slope_mev_per_atom_per_ps"] = 1000 * table[DRIFT_SLOPE]
    cols = ["model", "system", "temperature_k", "label", "part", "ensemble", "timestep_fs",
            "n_atoms", "drift_max_mev_per_atom", "drift_slope_mev_per_atom_per_ps", "status",
            "md_run_id"]
    table = table[cols].sort_values(["model", "system", "temperature_k", "label", "part"],
                                    kind="stable")
    notes = ["drift_max = max_t |E(t)-E(t0)|/N; drift_slope = least-squares slope of E(t)/N"
             " against t; both over the NVE part of each run (see each observable's method)"]
    if len(left := rs[~rs["md_run_id"].isin(keep["md_run_id"])]):
        notes.append(f"{len(left)} run(s) without an NVE stage (no drift) not listed: runs "
                     + ", ".join(f"{r.md_run_id} ({r.ensemble or '?'})" for r in left.itertuples()))
    return MDReport(table.reset_index(drop=True), notes)


def observable_stats(
    wh: Warehouse,
    name: str,
    *,
    ensemble: str | None = None,
    models: Sequence[str] = (),
    system: str | None = None,
    label: str | None = None,
) -> MDReport:
    """One observable across ensemble members: per-member values, then the labelled statistics."""
    members = _members(wh, ensemble, models)
    rs = runs(wh, models=members, systems=[system] if system else (), label=label)
    obs = _observables(wh, rs["md_run_id"], [name]) if not rs.empty else pd.DataFrame(
        columns=["md_run_id", "name", "value", "unit"])
    if obs.empty:
        stored = sorted(set(_read(wh, select(m.MDObservable.name).where(m.MDObservable.md_run_id.in_(
            [int(i) for i in rs["md_run_id"]])))["name"])) if not rs.empty else []
        raise NoMatch(f"no stored observable {name!r} for these models"
                      + (f" (system {system!r})" if system else "")
                      + (f"; their runs have: {', '.join(stored[:10])}"
                         f"{' ...' if len(stored) > 10 else ''}" if stored else
                         "; no MD run of theirs is stored"))
    rows = rs.merge(obs, on="md_run_id")
    if members:
        dup = rows["model"].value_counts()
        if (dup > 1).any():
            raise NoMatch(f"model {dup.idxmax()!r} has {dup.max()} runs with {name!r}; narrow with"
                          " --system or --label")
    units = rows["unit"].dropna().unique()
    if len(units) > 1:
        raise NoMatch(f"{name!r} is stored in several units ({', '.join(units)}); not comparable")
    unit = units[0] if len(units) else None
    order = {mname: i for i, mname in enumerate(members)}
    rows = rows.sort_values("model", key=lambda s: s.map(order).fillna(len(order)), kind="stable")
    table = [{"kind": "member", "name": r.model, "system": r.system, "value": r.value, "unit": unit}
             for r in rows.itertuples()]
    missing = [mname for mname in members if mname not in set(rows["model"])]
    table += [{"kind": "member", "name": mname, "system": system, "value": np.nan, "unit": unit}
              for mname in missing]
    st = calc_member_stats(rows["value"].to_numpy())
    pct = (lambda x: None if x is None else 100 * x)
    stats = [("n members", st.n, None), ("mean", st.mean, unit),
             ("std (population, /K)", st.std_population, unit),
             ("std (sample, /(K-1))", st.std_sample, unit),
             ("relative std (population)", pct(st.rel_population), "%"),
             ("relative std (sample)", pct(st.rel_sample), "%")]
    table += [{"kind": "statistic", "name": k, "system": system, "value": v, "unit": u}
              for k, v, u in stats]
    notes = [f"{name} over {st.n} members" + (f" of ensemble {ensemble!r}" if ensemble else "")]
    if missing:
        notes.append(f"no value for {', '.join(missing)} (not in the statistics)")
    out = pd.DataFrame(table, columns=["kind", "name", "system", "value", "unit"])
    out["value"] = pd.to_numeric(out["value"], errors="coerce")
    return MDReport(out, notes)


# -- series -----------------------------------------------------------------------------------


def load_series(wh: Warehouse, md_run_id: int, name: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """A stored series as a DataFrame, and its column units."""
    with wh.session() as s:
        row = s.scalar(select(m.MDSeries).where(m.MDSeries.md_run_id == md_run_id,
                                                m.MDSeries.name == name))
        if row is None:
            have = s.scalars(select(m.MDSeries.name).where(m.MDSeries.md_run_id == md_run_id)).all()
            raise NotFound(f"MD run {md_run_id} has no series {name!r} (it has:"
                           f" {', '.join(have) or 'none'})")
        path = s.get(m.LakeFile, row.lake_file_id).path
        units = dict(row.columns)
    df = wh.lake.read(path).to_pandas().drop(columns=["md_series_id"])
    return df, units


def _window(df: pd.DataFrame, t_start: float | None, t_end: float | None,
            stage: int | None) -> pd.DataFrame:
    sel = df
    if stage is not None:
        sel = sel[sel["stage"] == stage]
    if t_start is not None:
        sel = sel[sel["time"] >= t_start]
    if t_end is not None:
        sel = sel[sel["time"] <= t_end]
    if sel.empty:
        raise NoMatch("the window holds no samples")
    return sel


def _total_energy(df: pd.DataFrame) -> np.ndarray:
    if "total_energy" in df:
        return df["total_energy"].to_numpy()
    if {"kinetic_energy", "potential_energy"} <= set(df.columns):
        return (df["kinetic_energy"] + df["potential_energy"]).to_numpy()
    raise NoMatch("the series has no total_energy (nor kinetic_energy + potential_energy)")


def recompute_drift(wh: Warehouse, md_run_id: int, *, series: str = "thermo",
                    t_start: float | None = None, t_end: float | None = None,
                    stage: int | None = None, n_atoms: int | None = None) -> Drift:
    """Energy drift of a stored series over a window (eV/atom, eV/atom/ps)."""
    df, _ = load_series(wh, md_run_id, series)
    sel = _window(df, t_start, t_end, stage)
    if n_atoms is None:
        with wh.session() as s:
            n_atoms = s.get(m.MDRun, md_run_id).n_atoms
    if not n_atoms:
        raise NoMatch(f"MD run {md_run_id} has no atom count; pass n_atoms")
    return calc_energy_drift(sel["time"].to_numpy(), _total_energy(sel), n_atoms)


def window_stats(wh: Warehouse, md_run_id: int, column: str, *, series: str = "thermo",
                 t_start: float | None = None, t_end: float | None = None,
                 stage: int | None = None) -> WindowStats:
    """Mean and fluctuation of one column (or ``pressure``: the mean of the diagonal) in a window."""
    df, _ = load_series(wh, md_run_id, series)
    sel = _window(df, t_start, t_end, stage)
    if column == "pressure" and "pressure" not in sel:
        values = sel[["pressure_xx", "pressure_yy", "pressure_zz"]].mean(axis=1)
    elif column == "total_energy":
        values = _total_energy(sel)
    elif column in sel:
        values = sel[column]
    else:
        raise NoMatch(f"series {series!r} has no column {column!r}")
    return calc_window_stats(np.asarray(values))


def series_overlay(
    wh: Warehouse,
    *,
    series: str,
    column: str,
    ensemble: str | None = None,
    models: Sequence[str] = (),
    system: str | None = None,
    label: str | None = None,
    time: float | None = None,
) -> MDReport:
    """One column of one series across members, long form: model, system, label, x, value.

    For a series, x is time (ps). For a profile (a z/y/x/bin column), x is the position at the
    stored time nearest to ``time`` (default: the last time).
    """
    members = _members(wh, ensemble, models)
    rs = runs(wh, models=members, systems=[system] if system else (), label=label)
    if rs.empty:
        raise NoMatch("no MD runs match these filters")
    parts, notes = [], []
    for r in rs.itertuples():
        try:
            df, units = load_series(wh, r.md_run_id, series)
        except NotFound:
            continue
        if column not in df:
            raise NoMatch(f"series {series!r} of run {r.md_run_id} has no column {column!r}"
                          f" (columns: {', '.join(df.columns)})")
        pos = next((p for p in POSITION_COLUMNS if p in df), None)
        if pos:
            times = np.unique(df["time"].to_numpy())
            t = times[-1] if time is None else times[np.argmin(np.abs(times - time))]
            df = df[df["time"] == t]
            notes.append(f"{r.model}: profile at t = {t:g} ps")
        x = df[pos] if pos else df["time"]
        parts.append(pd.DataFrame({
            "model": r.model, "system": r.system, "label": r.label, "md_run_id": r.md_run_id,
            "x_name": pos or "time", "x_unit": units.get(pos or "time"), "x": x.to_numpy(),
            "column": column, "unit": units.get(column), "value": df[column].to_numpy()}))
    if not parts:
        raise NoMatch(f"no run has a series named {series!r}")
    return MDReport(pd.concat(parts, ignore_index=True), notes)
