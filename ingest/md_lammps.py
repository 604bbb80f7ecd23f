"""LAMMPS log thermo tables (pure: no database); the format is described in :mod:`ingest.md`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ingest.md import PRESSURE_NOTE, MDData, Stage, run_meta
from ingest.textio import reader_guard
from warehouse.errors import IngestError

# -- LAMMPS -----------------------------------------------------------------------------------

LAMMPS_NAMES = {
    "Step": "step", "Time": "time", "Temp": "temperature", "PotEng": "potential_energy",
    "KinEng": "kinetic_energy", "TotEng": "total_energy", "Press": "pressure", "Volume": "volume",
    "Density": "density", "Lx": "lx", "Ly": "ly", "Lz": "lz",
    **{f"P{c}": f"pressure_{c}" for c in ("xx", "yy", "zz", "yz", "xz", "xy")},
}
_LAMMPS_ENERGY = {"PotEng", "KinEng", "TotEng", "E_pair", "E_vdwl", "E_coul", "E_long",
                  "E_bond", "E_mol", "Enthalpy", "Ecouple", "Econserve"}
_LAMMPS_PRESSURE = {"Press", "Pxx", "Pyy", "Pzz", "Pyz", "Pxz", "Pxy"}
_LAMMPS_LENGTH = {"Lx", "Ly", "Lz", "Xlo", "Xhi", "Ylo", "Yhi", "Zlo", "Zhi", "Xy", "Xz", "Yz"}
# units style -> (eV per energy unit, GPa per pressure unit, ps per time unit, default dt in ps)
LAMMPS_UNIT_STYLES = {
    "metal": (1.0, 1e-4, 1.0, 1e-3),  # eV, bar, ps
    "real": (0.0433641043, 1.01325e-4, 1e-3, 1e-3),  # kcal/mol, atm, fs
}
_LAMMPS_FIX_KINDS = {"nve": "NVE", "nvt": "NVT", "npt": "NPT", "nph": "NPH", "msst": "shock",
                     "nphug": "shock", "langevin": "NVT", "temp/berendsen": "NVT",
                     "temp/csvr": "NVT", "press/berendsen": "NPT"}


@dataclass(slots=True)
class _Block:
    header: list[str]
    rows: list[list[float]]
    stage: Stage
    lineno: int  # line of the header
    row_lines: list[int] = field(default_factory=list)


def _fix_targets(args: list[str], units: str | None) -> dict[str, Any]:
    """``temp Tstart Tstop`` and ``iso|aniso Pstart Pstop`` of a fix (pressure in GPa)."""
    out: dict[str, Any] = {}
    for i, tok in enumerate(args[:-2]):
        a, b = args[i + 1], args[i + 2]
        if not (_is_number(a) and _is_number(b)):
            continue
        if tok == "temp":
            out["temp"] = (float(a), float(b))
        elif tok in ("iso", "aniso") and (style := LAMMPS_UNIT_STYLES.get(units or "")):
            out["press"] = float(b) * style[1]
    return out


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


@reader_guard
def parse_lammps_log(path: str | Path, *, timestep_fs: float | None = None) -> list[MDData]:
    """Every thermo table of a LAMMPS log: one series, or one per run when their columns differ."""
    path = str(path)
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.readlines()
    last_line = max((i for i, x in enumerate(lines, 1) if x.strip()), default=0)
    units, dt, every, fixes, version = None, None, None, {}, None
    blocks: list[_Block] = []
    block: _Block | None = None
    pending: Stage | None = None
    targets: dict[str, Any] = {}  # thermostat/barostat targets of the fixes seen so far
    for lineno, raw in enumerate(lines, 1):
        toks = raw.split()
        if not toks:
            continue
        if block is not None:
            if toks[0] == "WARNING:":
                continue
            if len(toks) == len(block.header) and all(_is_number(t) for t in toks):
                vals = [float(t) for t in toks]
                if not all(math.isfinite(v) for v in vals):
                    raise IngestError("NaN or inf in a thermo row", path=path, where=f"line {lineno}")
                block.rows.append(vals)
                block.row_lines.append(lineno)
                continue
            if lineno == last_line and all(_is_number(t) for t in toks):
                raise IngestError(f"{len(toks)} values where the thermo header has"
                                  f" {len(block.header)} (a torn last line)", path=path,
                                  where=f"line {lineno}")
            block = None  # "Loop time of ...", an ERROR line, ...
        if toks[0] == "LAMMPS" and version is None and raw.startswith("LAMMPS ("):
            version = raw.strip()[8:-1]
        elif toks[0] == "units" and len(toks) > 1:
            units = toks[1]
        elif toks[0] == "timestep" and len(toks) > 1 and _is_number(toks[1]):
            dt = float(toks[1])
        elif toks[0] == "thermo" and len(toks) > 1 and toks[1].isdigit():
            every = int(toks[1])
        elif toks[0] == "fix" and len(toks) > 3:
            fixes[toks[1]] = toks[3]
            targets.update(_fix_targets(toks[4:], units))
        elif toks[0] == "unfix" and len(toks) > 1:
            fixes.pop(toks[1], None)
        elif toks[0] in ("run", "minimize") and len(toks) > 1:
            n = int(float(toks[1])) if toks[0] == "run" and _is_number(toks[1]) else None
            kinds = [k for f in fixes.values() if (k := _LAMMPS_FIX_KINDS.get(f))]
            kind = "minimize" if toks[0] == "minimize" else ("+".join(dict.fromkeys(kinds)) or None)
            thermostat = any(k in (kind or "") for k in ("NVT", "NPT"))
            barostat = any(k in (kind or "") for k in ("NPT", "NPH"))
            pending = Stage(len(blocks) + 1, ",".join(fixes.values()) or None, kind, n, None, every,
                            targets.get("temp") if thermostat else None,
                            targets.get("press") if barostat else None)
        elif toks[0] == "Step" and not any(_is_number(t) for t in toks):
            stage = pending or Stage(len(blocks) + 1, None, None, None, None, every)
            block = _Block(toks, [], stage, lineno)
            blocks.append(block)
            pending = None
        elif "Step" in toks and toks[0].startswith("-----"):
            raise IngestError("thermo_style multi is not supported; use thermo_style one or custom",
                              path=path, where=f"line {lineno}")
    blocks = [b for b in blocks if b.rows]
    if not blocks:
        raise IngestError("no thermo table (a line starting with 'Step' followed by rows)", path=path)
    return _lammps_series(blocks, units, dt, timestep_fs, version, path)


def _lammps_convert(name: str, values: np.ndarray, units: str | None) -> tuple[np.ndarray, str | None]:
    style = LAMMPS_UNIT_STYLES.get(units or "")
    if style is None:
        return values, (f"lammps-{units}" if units else None)
    energy, pressure, time, _ = style
    if name in _LAMMPS_ENERGY:
        return values * energy, "eV"
    if name in _LAMMPS_PRESSURE:
        return values * pressure, "GPa"
    if name == "Time":
        return values * time, "ps"
    if name in _LAMMPS_LENGTH:
        return values, "Å"
    if name == "Volume":
        return values, "Å^3"
    return values, {"Temp": "K", "Step": "step", "Density": "g/cm^3", "CPU": "s"}.get(name)


def _lammps_series(blocks: list[_Block], units: str | None, dt: float | None,
                   timestep_fs: float | None, version: str | None, path: str) -> list[MDData]:
    style = LAMMPS_UNIT_STYLES.get(units or "")
    if timestep_fs is not None:
        dt_ps = timestep_fs * 1e-3
    elif style is not None:
        dt_ps = (dt * style[2]) if dt is not None else style[3]
    else:
        dt_ps = None
    same = all(b.header == blocks[0].header for b in blocks)
    groups = [blocks] if same else [[b] for b in blocks]
    out: list[MDData] = []
    prev_step = None
    for gi, group in enumerate(groups, 1):
        cols: dict[str, list[np.ndarray]] = {}
        units_of: dict[str, str | None] = {}
        stage_idx: list[np.ndarray] = []
        row = 0
        for b in group:
            data = np.array(b.rows)
            if "Step" not in b.header:
                raise IngestError("the thermo table has no Step column", path=path, where=f"line {b.lineno}")
            steps = data[:, b.header.index("Step")]
            if prev_step is not None and steps[0] == prev_step:
                data, steps, b.row_lines = data[1:], steps[1:], b.row_lines[1:]
            full = steps if prev_step is None else np.concatenate([[prev_step], steps])
            if (bad := np.flatnonzero(np.diff(full) <= 0)).size:
                k = int(bad[0]) + (1 if prev_step is None else 0)  # offending row of this block
                raise IngestError("the step does not increase (non-monotonic time; a reset_timestep"
                                  " between runs? ingest the runs separately)", path=path,
                                  where=f"line {b.row_lines[k]}")
            if len(steps):
                prev_step = steps[-1]
            b.stage.timestep_fs = dt_ps * 1e3 if dt_ps else None
            b.stage.first_row, b.stage.n_rows = row, len(data)
            row += len(data)
            stage_idx.append(np.full(len(data), b.stage.index, dtype=np.float64))
            for j, name in enumerate(b.header):
                vals, unit = _lammps_convert(name, data[:, j], units)
                key = LAMMPS_NAMES.get(name) or re.sub(r"[^A-Za-z0-9_]", "_", name)
                cols.setdefault(key, []).append(vals)
                units_of[key] = unit
        columns = {k: np.concatenate(v) for k, v in cols.items()}
        if "time" not in columns:
            if dt_ps is None:
                raise IngestError(f"units {units!r} have no known time unit and the log has no Time"
                                  " column: pass the time step", path=path)
            columns = {"time": columns["step"] * dt_ps, **columns}
            units_of = {"time": "ps", **units_of}
        columns["stage"] = np.concatenate(stage_idx)
        units_of["stage"] = ""
        stages = [b.stage for b in group]
        meta = run_meta(stages, engine="LAMMPS")
        if dt_ps:
            meta["timestep_fs"] = dt_ps * 1e3
        meta["engine_version"] = version
        notes = [] if style else [f"units {units!r}: values stored as LAMMPS wrote them"]
        out.append(MDData(name="thermo" if same else f"thermo_run{gi}", kind="series",
                          columns=columns, units=units_of, stages=stages, meta=meta,
                          notes=notes + [PRESSURE_NOTE]))
    return out
