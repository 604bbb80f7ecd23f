"""LAMMPS log thermo tables (pure: no database), read as LAMMPS writes them.

* Every ``run N`` and ``minimize`` that printed a thermo table is a stage, in log order, with the
  fixes then active (``fix ... nve|nvt|npt``), the ``timestep`` then in force and the atom count
  of its ``Loop time of T on P procs for N steps with M atoms`` line (else the ``Created N atoms``
  / ``read_data`` counts). ``units`` (metal, real) converts energies to eV and pressures to GPa.
* ``time`` is the simulated time elapsed since the log's first row: it advances by each MD
  stage's own steps and time step, restarts nowhere (a ``reset_timestep`` restarts only
  ``step``), and stands still in a ``minimize`` and a ``run 0`` (stage kinds ``minimize`` and
  ``run 0``: no dynamics, no MD speed). LAMMPS's own ``Time`` column is kept as ``lammps_time``.
* LAMMPS prints the state a run starts from as its first row, which repeats the last row of the
  previous run. It is kept, at the same time as that row: it is the stage's starting state, and
  an NVE stage's drift is measured from it. So ``time`` never decreases but may repeat at a
  stage boundary.
* ``thermo_modify norm yes`` prints extensive quantities per atom: the energy keywords (PotEng,
  TotEng, E_pair, ...) are stored as totals (x the stage's atom count), like every other source;
  columns LAMMPS does not name (``c_*``, ``v_*``) are stored as written, with a note.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ingest.hardware import Hardware, lammps_accelerator
from ingest.md import PRESSURE_NOTE, MDData, Stage, run_meta
from ingest.textio import reader_guard
from warehouse.errors import IngestError

# -- LAMMPS -----------------------------------------------------------------------------------

LAMMPS_NAMES = {
    "Step": "step", "Time": "lammps_time", "Temp": "temperature", "PotEng": "potential_energy",
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


_LOOP = re.compile(r"^Loop time of \S+ on \d+ procs for (\d+) steps with (\d+) atoms")
_CREATED = re.compile(r"^Created (\d+) atoms")
_READ_ATOMS = re.compile(r"^\s+(\d+) atoms\s*$")
STATIC_KINDS = ("minimize", "run 0")  # stages without dynamics


@dataclass(slots=True)
class _Block:
    header: list[str]
    rows: list[list[float]]
    stage: Stage
    lineno: int  # line of the header
    row_lines: list[int] = field(default_factory=list)
    reset: bool = False  # a reset_timestep came before this run
    norm: bool = False  # thermo_modify norm yes: extensive columns per atom
    dt: float | None = None  # the timestep command's value (log units) in force for this run


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
    norm, reset, created, read_atoms = False, False, 0, None
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
        if (mt := _LOOP.match(raw)) and blocks and blocks[-1].stage.n_atoms is None:
            blocks[-1].stage.n_atoms = int(mt.group(2))
        elif mt := _CREATED.match(raw):
            created += int(mt.group(1))
        elif mt := _READ_ATOMS.match(raw):
            read_atoms = int(mt.group(1))
        elif toks[0] == "LAMMPS" and version is None and raw.startswith("LAMMPS ("):
            version = raw.strip()[8:-1]
        elif toks[0] == "units" and len(toks) > 1:
            units = toks[1]
        elif toks[0] == "timestep" and len(toks) > 1 and _is_number(toks[1]):
            dt = float(toks[1])
        elif toks[0] == "thermo" and len(toks) > 1 and toks[1].isdigit():
            every = int(toks[1])
        elif toks[0] == "thermo_modify" and "norm" in toks[:-1]:
            norm = toks[toks.index("norm") + 1].lower() in ("yes", "true", "on", "1")
        elif toks[0] == "reset_timestep":
            reset = True
        elif toks[0] == "fix" and len(toks) > 3:
            fixes[toks[1]] = toks[3]
            targets.update(_fix_targets(toks[4:], units))
        elif toks[0] == "unfix" and len(toks) > 1:
            fixes.pop(toks[1], None)
        elif toks[0] in ("run", "minimize") and len(toks) > 1:
            pending = _stage(toks, len(blocks) + 1, fixes, targets, every)
        elif toks[0] == "Step" and not any(_is_number(t) for t in toks):
            stage = pending or Stage(len(blocks) + 1, None, None, None, None, every)
            block = _Block(toks, [], stage, lineno, reset=reset, norm=norm, dt=dt)
            blocks.append(block)
            pending, reset = None, False
        elif "Step" in toks and toks[0].startswith("-----"):
            raise IngestError("thermo_style multi is not supported; use thermo_style one or custom",
                              path=path, where=f"line {lineno}")
    blocks = [b for b in blocks if b.rows]
    if not blocks:
        raise IngestError("no thermo table (a line starting with 'Step' followed by rows)", path=path)
    for b in blocks:  # a run cut before its Loop time line: the atoms the log created or read
        b.stage.n_atoms = b.stage.n_atoms or created or read_atoms
    out = _lammps_series(blocks, units, timestep_fs, version, path)
    accel = lammps_accelerator(lines)
    if accel.device_count:  # a GPU run: the devices the log states (KOKKOS does not name them)
        for d in out:
            d.meta["hardware"] = Hardware(None, None, accel.device_model, accel.device_count).label
    return out


def _stage(toks: list[str], index: int, fixes: dict[str, str], targets: dict[str, Any],
           every: int | None) -> Stage:
    """The stage a ``run N`` or ``minimize`` command starts, with the fixes active then."""
    n = int(float(toks[1])) if toks[0] == "run" and _is_number(toks[1]) else None
    kinds = [k for f in fixes.values() if (k := _LAMMPS_FIX_KINDS.get(f))]
    if toks[0] == "minimize":
        kind: str | None = "minimize"
    elif n == 0:
        kind = "run 0"
    else:
        kind = "+".join(dict.fromkeys(kinds)) or None
    thermostat = any(k in (kind or "") for k in ("NVT", "NPT"))
    barostat = any(k in (kind or "") for k in ("NPT", "NPH"))
    return Stage(index, ",".join(fixes.values()) or None, kind, n, None, every,
                 targets.get("temp") if thermostat else None,
                 targets.get("press") if barostat else None)


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


def _lammps_series(blocks: list[_Block], units: str | None, timestep_fs: float | None,
                   version: str | None, path: str) -> list[MDData]:
    style = LAMMPS_UNIT_STYLES.get(units or "")
    same = all(b.header == blocks[0].header for b in blocks)
    groups = [blocks] if same else [[b] for b in blocks]
    out: list[MDData] = []
    t_end = 0.0  # simulated time (ps) at the end of the previous stage
    prev: _Block | None = None
    for gi, group in enumerate(groups, 1):
        cols: dict[str, list[np.ndarray]] = {}
        units_of: dict[str, str | None] = {}
        stage_idx: list[np.ndarray] = []
        times: list[np.ndarray] = []
        row = 0
        for b in group:
            if "Step" not in b.header:
                raise IngestError("the thermo table has no Step column", path=path, where=f"line {b.lineno}")
            dt_ps = _dt_ps(b, style, timestep_fs)
            data, time = _block_rows(b, prev, dt_ps, t_end, path)
            t_end = float(time[-1]) if len(time) else t_end
            prev = b
            b.stage.timestep_fs = dt_ps * 1e3 if dt_ps else None
            b.stage.first_row, b.stage.n_rows = row, len(data)
            row += len(data)
            stage_idx.append(np.full(len(data), b.stage.index, dtype=np.float64))
            times.append(time)
            for j, name in enumerate(b.header):
                vals, unit = _lammps_convert(name, data[:, j], units)
                if b.norm and name in _LAMMPS_ENERGY:
                    if not b.stage.n_atoms:
                        raise IngestError("thermo_modify norm yes prints energies per atom, but the"
                                          " log states no atom count", path=path,
                                          where=f"line {b.lineno}")
                    vals = vals * b.stage.n_atoms
                key = LAMMPS_NAMES.get(name) or re.sub(r"[^A-Za-z0-9_]", "_", name)
                cols.setdefault(key, []).append(vals)
                units_of[key] = unit
        columns = {k: np.concatenate(v) for k, v in cols.items()}
        if "lammps_time" in columns and any(t is None for t in times):
            columns["time"] = columns["lammps_time"]  # no time step known: LAMMPS's own clock
            units_of["time"] = units_of["lammps_time"]
        elif any(t is None for t in times):
            raise IngestError(f"units {units!r} have no known time unit and the log has no Time"
                              " column: pass the time step", path=path)
        else:
            columns = {"time": np.concatenate(times), **columns}
            units_of = {"time": "ps", **units_of}
        columns["stage"] = np.concatenate(stage_idx)
        units_of["stage"] = ""
        stages = [b.stage for b in group]
        meta = run_meta(stages, engine="LAMMPS")
        meta["engine_version"] = version
        out.append(MDData(name="thermo" if same else f"thermo_run{gi}", kind="series",
                          columns=columns, units=units_of, stages=stages, meta=meta,
                          notes=_notes(group, style, units, meta)))
    return out


def _dt_ps(b: _Block, style: tuple[float, ...] | None, timestep_fs: float | None) -> float | None:
    """The time step of this run in ps: the option, else the log's ``timestep``, else the units'
    default."""
    if timestep_fs is not None:
        return timestep_fs * 1e-3
    if style is None:
        return None
    return b.dt * style[2] if b.dt is not None else style[3]


def _block_rows(b: _Block, prev: _Block | None, dt_ps: float | None, t_start: float,
                path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows of ``b`` and their elapsed time (ps; None without a time step)."""
    data = np.array(b.rows)
    lines = b.row_lines
    col = b.header.index("Step")
    steps = data[:, col]
    origin = steps[0]  # the step this run started from
    if (bad := np.flatnonzero(np.diff(steps) <= 0)).size:
        raise IngestError("the step does not increase within a run", path=path,
                          where=f"line {lines[int(bad[0]) + 1]}")
    if prev is not None and prev.rows and not b.reset:
        if steps[0] < prev.rows[-1][prev.header.index("Step")]:
            raise IngestError("the step goes back without a reset_timestep before this run",
                              path=path, where=f"line {lines[0]}")
    if dt_ps is None:
        return data, None
    if b.stage.kind in STATIC_KINDS:  # no dynamics: the clock stands still
        return data, np.full(len(data), t_start)
    return data, t_start + (data[:, col] - origin) * dt_ps


def _notes(group: list[_Block], style: tuple[float, ...] | None, units: str | None,
           meta: dict[str, Any]) -> list[str]:
    notes = [] if style else [f"units {units!r}: values stored as LAMMPS wrote them"]
    if any(b.norm for b in group):
        loose = sorted({h for b in group if b.norm for h in b.header
                        if h.startswith(("c_", "v_", "f_"))})
        notes.append("thermo_modify norm yes: the log's energies are per atom; stored as totals"
                     " (x atoms)" + (f"; {', '.join(loose)} stored as written" if loose else ""))
    static = [f"stage {b.stage.index} ({b.stage.kind})" for b in group
              if b.stage.kind in STATIC_KINDS]
    if static:
        notes.append(", ".join(static) + ": no dynamics, time stands still")
    if any(b.reset for b in group):
        notes.append("reset_timestep: step restarts; time is elapsed simulated time")
    atoms = {b.stage.n_atoms for b in group if b.stage.n_atoms}
    if len(atoms) == 1:
        meta["n_atoms"] = atoms.pop()
    elif len(atoms) > 1:
        notes.append(f"the atom count changes between runs ({', '.join(map(str, sorted(atoms)))})")
    return [*notes, PRESSURE_NOTE]
