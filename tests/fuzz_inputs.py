"""Deterministic fuzzing of every reader: mutants of real and small files through the pure parse
functions (no database), one outcome per mutant.

A mutant is a seed file with one to three mutations: a truncation, byte flips, a dropped,
doubled or swapped line, a count changed to something huge, zero or negative, a number changed
to an odd number or a word, a long line, blank lines, a NUL byte. Each is parsed to the end and
classed as ``refused`` (a ``WarehouseError``, the one-line error a user sees), ``accepted``, or
``traceback`` (any other exception: a defect); a numpy ``RuntimeWarning`` is a defect too, and
so is more than ``LIMIT_S`` seconds or ``LIMIT_MB`` of memory.

Run (tests/test_fuzz.py does, in a child process so that a crash is reported, not suffered):
    python tests/fuzz_inputs.py --seed 17 --per-seed 40 --out /tmp/fuzz.jsonl [--shared ../shared/data]
Each line of the output is one mutant's JSON record; a ``start`` record precedes each, so the
last one names the culprit if the process dies.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import shutil
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # run as a script: the project, not tests/, on the path
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LIMIT_S = 10.0
LIMIT_MB = 500.0

ODD_WORDS = ["nan", "NaN", "inf", "-inf", "1e999", "1e300", "-1e300", "0x1p3", "½", "１.０",
             "--1.0", "1.0.0", "1,5", "T", "F", "True", "False", "word", "", "1_0", '"', "{",
             "[", "]]", "=", "energy", "4294967328", "-0", "1e-320", "9" * 40]
ODD_COUNTS = ["0", "-1", "-5", "2147483647", "2147483648", "4294967328", "1000000000",
              "10000000", "99999999999999999999", "1e9", "3.5", "0x10"]


# --- small seed files (always available) -------------------------------------------------------

def _xyz(n_frames: int = 3, *, extra: str = "", arrays: str = "", values=None) -> str:
    """A small extended XYZ: Cu/Ni frames with energy, forces and a symmetric 3x3 stress."""
    rng = random.Random(5)
    out = []
    for k in range(n_frames):
        n = 2 + k
        s = [rng.uniform(-0.01, 0.01) for _ in range(6)]
        stress = [s[0], s[5], s[4], s[5], s[1], s[3], s[4], s[3], s[2]]
        out.append(f"{n}\nLattice=\"{4 + k} 0.0 0.0 0.0 {4 + k} 0.0 0.0 0.0 {4 + k}\" "
                   f"Properties=species:S:1:pos:R:3:forces:R:3{arrays} energy={-3.5 * n + k:.6f} "
                   f"stress=\"{' '.join(f'{x:.8f}' for x in stress)}\" pbc=\"T T T\"{extra}\n")
        for i in range(n):
            cols = [f"{rng.uniform(0, 4):.6f}" for _ in range(3)] + [f"{rng.uniform(-1, 1):.6f}" for _ in range(3)]
            if values:
                cols += values(rng)
            out.append(f"{'Cu' if i % 2 else 'Ni'} {' '.join(cols)}\n")
    return "".join(out)


def _gpumd_xyz() -> str:
    rng = random.Random(6)
    out = []
    for k in range(2):
        n = 2
        w = [rng.uniform(-1, 1) for _ in range(6)]
        virial = [w[0], w[5], w[4], w[5], w[1], w[3], w[4], w[3], w[2]]
        out.append(f"{n}\nEnergy={-7.0 - k:.5f} config_type=g Virial=\"{' '.join(f'{x:.6f}' for x in virial)}\" "
                   f"pbc=\"T T T\" Lattice=\"4 0 0 0 4 0 0 0 4\" Properties=species:S:1:pos:R:3:force:R:3\n")
        for i in range(n):
            out.append(f"Pb {i * 2.0} {i * 2.0} {i * 2.0} {rng.uniform(-1, 1):.5f} 0.1 -0.1\n")
    return "".join(out)


def _gpumd_outs() -> dict[str, str]:
    return {
        "energy_train.out": "-3.51 -3.50\n-4.01 -4.00\n",
        "force_train.out": "".join(f"0.1 0.0 -0.1 0.11 0.01 -0.09\n" for _ in range(4)),
        "virial_train.out": "".join(f"{' '.join(['0.01'] * 6)} {' '.join(['0.011'] * 6)}\n" for _ in range(2)),
    }


THERMO_RUN_IN = "potential nep.txt\nvelocity 300\ntime_step 1\nensemble nve\ndump_thermo 10\nrun 50\n"
THERMO = "".join(f"{300 + k} 1.{k} -10.{k} 0.1 0.1 0.1 0 0 0 10 10 10\n" for k in range(5))

SMALL: dict[str, tuple[str, str]] = {  # name -> (kind, text)
    "small.xyz": ("extxyz", _xyz()),
    "small_gpumd.xyz": ("extxyz", _gpumd_xyz()),
    "pred.xyz": ("predictions", _xyz(2, extra=" energy_pred=-7.1", arrays=":forces_pred:R:3",
                                     values=lambda r: [f"{r.uniform(-1, 1):.5f}" for _ in range(3)])),
    "grades.xyz": ("grades-xyz", _xyz(2, arrays=":gamma:R:1", values=lambda r: [f"{r.uniform(0, 2):.4f}"])),
    "timings.csv": ("timings", "model,task,software,n_atoms,n_steps,wall_s,device,precision,system\n"
                               "nep,md,GPUMD,1000,100,2.5,A100,fp32,Cu\nnep,md,GPUMD,2000,100,4.9,A100,fp32,Cu\n"),
    "timings.yaml": ("timings", "timings:\n- model: nep\n  task: md\n  software: GPUMD\n  n_atoms: 1000\n"
                                "  n_steps: 100\n  wall_s: 2.5\n  device: A100\n"),
    "timings.json": ("timings", '[{"model": "nep", "task": "md", "software": "GPUMD", "n_atoms": 1000,'
                                ' "n_steps": 100, "wall_s": 2.5, "device": "A100"}]'),
    "props.csv": ("properties", "material,property,key,value,unit,source,source_type\n"
                                "Cu,C11,,176.2,GPa,PBE,level_of_theory\nCu,surface_energy,(111),1.25,J/m^2,nep-a,model\n"),
    "props.json": ("properties", '[{"material": "Cu", "property": "C11", "value": 176.2, "unit": "GPa",'
                                 ' "source": "PBE", "source_type": "level_of_theory"}]'),
    "grades.csv": ("grades-csv", "hash,atom_index,grade\nabc,0,0.5\nabc,1,1.2\ndef,0,0.1\n"),
    "observables.csv": ("observables", "name,value,unit\nspall_strength,12.5,GPa\nmelting_point,1350,K\n"),
    "series.csv": ("md-table", "time [ps],length [nm],temperature [K]\n0,1,300\n1,2,301\n2,3,302\n"),
    "mlearn.json": ("mlearn", json.dumps([{
        "structure": {"lattice": {"matrix": [[3.6, 0, 0], [0, 3.6, 0], [0, 0, 3.6]]},
                      "sites": [{"species": [{"element": "Cu", "occu": 1}], "xyz": [0, 0, 0]},
                                {"species": [{"element": "Cu", "occu": 1}], "xyz": [1.8, 1.8, 0]}]},
        "outputs": {"energy": -7.2, "forces": [[0, 0, 0.1], [0, 0, -0.1]],
                    "virial_stress": [1, 2, 3, 0.1, 0.2, 0.3]}, "group": "Bulk"}])),
    "loss.out": ("gpumd-loss", "".join(f"{100 * (k + 1)} 0.5 0.1 0.1 0.01 0.1 0.0 0.02 0.2 0.0\n" for k in range(4))),
    "thermo.out": ("thermo", THERMO),
}

# Real files (../shared/data): kind, path, and how many leading lines to keep (small mutants)
REAL: list[tuple[str, str, int | None]] = [
    ("extxyz", "gpumd/nep_train_PbTe/train.xyz", 2 * 252),
    ("extxyz", "gpumd_wizard/unep_v1_dft_ref/eos/ref.xyz", 30),
    ("extxyz", "uf3/test.xyz", 130),
    ("mlearn", "mlearn/data/Cu/test.json", None),
    ("gpumd-log", "gpumd_tutorials/PdCuNiP_melting/Cu/log.Cu", None),
    ("lammps-log", "lammps/bench_eam_Cu/log.15Jul25.eam.fixed.g++.1", None),
    ("lammps-log", "lammps/meam_spline_TiO2_multirun/log.17Dec2022.meam-spline.TiO2.g++.4", None),
    ("thermo", "gpumd_tutorials/PdCuNiP_melting/Cu/thermo.out", 60),
    ("gpumd-loss", "gpumd/nep_train_PbTe/loss.out", 40),
    # VASP through ASE (a gzip-compressed original is decompressed first; its name says the format)
    ("vasp", "vasp/pymatgen/vasprun.etest4.xml.gz", None),
    ("vasp", "vasp/pymatgen/OUTCAR_vasp_6.3.gz", 1500),
]


@dataclass(frozen=True)
class Seed:
    kind: str
    name: str
    data: bytes


def _ase_db() -> bytes:
    """A small ase.db file (three Cu cells with energy, forces, stress), the same bytes each time."""
    import sqlite3
    import tempfile

    import ase.db
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = random.Random(9)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cells.db"
        with ase.db.connect(str(path)) as db:
            for k in range(3):
                a = bulk("Cu", "fcc", 3.6 + 0.01 * k, cubic=True)
                a.calc = SinglePointCalculator(
                    a, energy=-14.0 + 0.1 * k, forces=[[rng.uniform(-0.1, 0.1) for _ in range(3)]
                                                        for _ in range(len(a))],
                    stress=[rng.uniform(-0.01, 0.01) for _ in range(6)])
                db.write(a, config_type="fz")
        with sqlite3.connect(path) as conn:  # no clock, user name or random id in the bytes
            conn.execute("UPDATE systems SET ctime = 0, mtime = 0, username = 'fuzz',"
                         " unique_id = printf('%032d', id)")
        conn.close()
        with sqlite3.connect(path) as conn:
            conn.execute("VACUUM")
        conn.close()
        return path.read_bytes()


def seeds(shared: Path | None) -> list[Seed]:
    out = [Seed(kind, name, text.encode()) for name, (kind, text) in SMALL.items()]
    out += [Seed("gpumd-out", name, text.encode()) for name, text in _gpumd_outs().items()]
    out.append(Seed("asedb", "cells.db", _ase_db()))
    if shared is not None and shared.is_dir():
        for kind, rel, keep in REAL:
            p = shared / rel
            if not p.is_file():
                continue
            data = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            if p.suffix == ".gz":
                rel = rel[:-3]
            if keep is not None:
                data = b"".join(data.splitlines(keepends=True)[:keep])
            if kind == "mlearn":
                data = json.dumps(json.loads(data)[:3]).encode()
            out.append(Seed(kind, f"{Path(rel).parent.name}-{Path(rel).name}", data))
    return out


# --- mutations ------------------------------------------------------------------------------

def _lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True) or [b""]


def _tokens(data: bytes) -> list[tuple[int, int]]:
    import re

    return [(m.start(), m.end()) for m in re.finditer(rb"[-+]?\d[\w.+-]*", data)]


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def flip_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if b:
            b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def drop_line(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    del lines[rng.randrange(len(lines))]
    return b"".join(lines)


def double_line(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    k = rng.randrange(len(lines))
    lines.insert(k, lines[k])
    return b"".join(lines)


def swap_lines(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


def change_count(rng: random.Random, data: bytes) -> bytes:
    """An integer (an atom count, a row count, a step) made huge, zero or negative."""
    toks = [t for t in _tokens(data) if data[t[0]:t[1]].isdigit()] or _tokens(data)
    if not toks:
        return data
    s, e = toks[0] if rng.random() < 0.3 else rng.choice(toks)
    return data[:s] + rng.choice(ODD_COUNTS).encode() + data[e:]


def odd_number(rng: random.Random, data: bytes) -> bytes:
    toks = _tokens(data)
    if not toks:
        return data
    s, e = rng.choice(toks)
    return data[:s] + rng.choice(ODD_WORDS).encode() + data[e:]


def long_line(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    lines.insert(rng.randrange(len(lines) + 1), b"1 " * rng.choice([5000, 600_000]) + b"\n")
    return b"".join(lines)


def blank_lines(rng: random.Random, data: bytes) -> bytes:
    lines = _lines(data)
    lines.insert(rng.randrange(len(lines) + 1), b"\n" * rng.choice([1, 3, 100_000]))
    return b"".join(lines)


def nul_byte(rng: random.Random, data: bytes) -> bytes:
    k = rng.randrange(len(data) + 1)
    return data[:k] + b"\0" + data[k:]


def duplicate_key(rng: random.Random, data: bytes) -> bytes:
    """A key=value of a line repeated on it (extended XYZ comment lines, JSON keys)."""
    import re

    lines = _lines(data)
    k = rng.randrange(len(lines))
    pairs = re.findall(rb'[A-Za-z_]+=(?:"[^"]*"|\S+)', lines[k])
    if pairs:
        lines[k] = lines[k].rstrip(b"\n") + b" " + rng.choice(pairs) + b"\n"
    return b"".join(lines)


MUTATIONS: list[Callable[[random.Random, bytes], bytes]] = [
    truncate, flip_bytes, drop_line, double_line, swap_lines, change_count, odd_number, odd_number,
    change_count, long_line, blank_lines, nul_byte, duplicate_key,
]


def mutate(rng: random.Random, data: bytes) -> tuple[bytes, list[str]]:
    names = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        fn = rng.choice(MUTATIONS)
        data = fn(rng, data)
        names.append(fn.__name__)
    return data, names


# --- what each kind is read by --------------------------------------------------------------

def _write(folder: Path, seed: Seed, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if seed.kind == "gpumd-out":
        outs = _gpumd_outs()
        (folder / "train.xyz").write_text(_gpumd_xyz())
        for name, text in outs.items():
            (folder / name).write_text(text)
        (folder / seed.name).write_bytes(data)  # the mutant is one of the three
        return folder
    if seed.kind == "thermo":
        (folder / "run.in").write_text(THERMO_RUN_IN if seed.name == "thermo.out" else _REAL_RUN_IN)
        (folder / "thermo.out").write_bytes(data)  # read with the run.in beside it
        return folder / "thermo.out"
    path = folder / (seed.name if seed.kind != "gpumd-loss" else "loss.out")
    path.write_bytes(data)
    return path


_REAL_RUN_IN = ""


def consumers() -> dict[str, Callable[[Path], object]]:
    from ingest import gpumd, grades, md, md_lammps, properties, timings
    from ingest.asedb import parse_ase_db
    from ingest.extxyz import parse_extxyz_batches
    from ingest.mlearn import parse_mlearn_json
    from ingest.predictions import parse_predictions
    from ingest.vasp import parse_vasp, read_vasp_settings

    return {
        "extxyz": lambda p: (list(parse_extxyz_batches(p)), list(parse_extxyz_batches(p, reader="ase"))),
        "predictions": lambda p: list(parse_predictions(p)),
        "grades-xyz": lambda p: list(grades.parse_grades_extxyz(p, "gamma")),
        "grades-csv": lambda p: list(grades.parse_grades_csv(p)),
        "mlearn": lambda p: list(parse_mlearn_json(p)),
        "gpumd-out": lambda p: gpumd.parse_gpumd_split(p, "train"),
        "gpumd-loss": lambda p: gpumd.read_loss(p),
        "gpumd-log": lambda p: timings.parse_gpumd_log(p),
        "lammps-log": lambda p: (timings.parse_lammps_log(p), md_lammps.parse_lammps_log(p)),
        "thermo": lambda p: md.parse_gpumd_thermo(p),
        "timings": lambda p: timings.parse_timings_table(p),
        "properties": lambda p: _properties(properties, p),
        "observables": lambda p: md.parse_observables_csv(p),
        "md-table": lambda p: md.parse_table(p),
        "vasp": lambda p: (read_vasp_settings(p), list(parse_vasp(p))),
        "asedb": lambda p: list(parse_ase_db(p)),
    }


def _properties(properties, p: Path) -> list:
    fmt = properties.detect_properties_format(p)
    options = properties._reader_options(fmt, str(p), None, "PBE", None)
    return list(properties._readers()[fmt](p, **options))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(seed_value: int, per_seed: int, out: Path, shared: Path | None, workdir: Path) -> None:
    from warehouse.errors import WarehouseError

    global _REAL_RUN_IN
    if shared is not None and (shared / "gpumd_tutorials/PdCuNiP_melting/Cu/run.in").is_file():
        _REAL_RUN_IN = (shared / "gpumd_tutorials/PdCuNiP_melting/Cu/run.in").read_text()
    readers = consumers()
    all_seeds = seeds(shared)
    with out.open("w") as log:
        for seed in all_seeds:
            base = seed.data
            for i in range(per_seed):
                rng = random.Random(f"{seed_value}/{seed.name}/{i}")
                data, how = mutate(rng, base)
                folder = workdir / f"{seed.name}-{i}"
                path = _write(folder, seed, data)
                rec = {"seed": seed.name, "kind": seed.kind, "i": i, "mutations": how}
                log.write(json.dumps({**rec, "start": True}) + "\n")
                log.flush()
                before = _peak_mb()
                t0 = time.perf_counter()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        readers[seed.kind](path)
                        rec["outcome"] = "accepted"
                    except WarehouseError as exc:
                        rec["outcome"] = _classify(exc)
                        rec["message"] = str(exc)[:300]
                    except Exception as exc:  # noqa: BLE001 - the defect being hunted
                        rec["outcome"] = "traceback"
                        rec["message"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                        rec["traceback"] = traceback.format_exc()[-1500:]
                rec["seconds"] = round(time.perf_counter() - t0, 3)
                rec["peak_growth_mb"] = round(_peak_mb() - before, 1)
                rec["warnings"] = [f"{w.category.__name__}: {w.message}"[:200] for w in caught
                                   if issubclass(w.category, RuntimeWarning)]
                log.write(json.dumps(rec) + "\n")
                log.flush()
                shutil.rmtree(folder, ignore_errors=True)
                if seed.kind == "extxyz" and i % 4 == 0:
                    _gz_mutant(seed, data, workdir, readers, log, rec)


def _gz_mutant(seed: Seed, data: bytes, workdir: Path, readers, log, rec: dict) -> None:
    """Every fourth extended XYZ mutant again as .xyz.gz (the ASE path, bounded expansion)."""
    from warehouse.errors import WarehouseError

    path = workdir / f"{seed.name}.gz-mutant.xyz.gz"
    path.write_bytes(gzip.compress(data))
    rec = {**rec, "seed": seed.name + ".gz", "outcome": None}
    rec.pop("message", None)
    rec.pop("traceback", None)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            readers["extxyz"](path)
            rec["outcome"] = "accepted"
        except WarehouseError as exc:
            rec["outcome"], rec["message"] = _classify(exc), str(exc)[:300]
        except Exception as exc:  # noqa: BLE001
            rec["outcome"] = "traceback"
            rec["message"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            rec["traceback"] = traceback.format_exc()[-1500:]
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    rec["warnings"] = [f"{w.category.__name__}: {w.message}"[:200] for w in caught
                       if issubclass(w.category, RuntimeWarning)]
    log.write(json.dumps(rec) + "\n")
    path.unlink()


def _classify(exc: Exception) -> str:
    """A clean refusal, or a defect: an error over several lines, or one the readers' last line
    of defence (ingest.textio.reader_guard) caught, which is a traceback in disguise."""
    if getattr(exc, "unexpected", False):
        return "traceback"
    return "multi-line error" if "\n" in str(exc) else "refused"


def summary(records: list[dict]) -> dict:
    done = [r for r in records if "outcome" in r]
    count = {k: sum(r["outcome"] == k for r in done)
             for k in ("refused", "accepted", "traceback", "multi-line error")}
    return {"mutants": len(done), **count,
            "runtime_warnings": sum(bool(r["warnings"]) for r in done),
            "slowest_s": max((r["seconds"] for r in done), default=0.0),
            "largest_growth_mb": max((r.get("peak_growth_mb", 0.0) for r in done), default=0.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--per-seed", type=int, default=40)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shared", type=Path)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        run(args.seed, args.per_seed, args.out, args.shared, args.workdir or Path(tmp))
    records = [json.loads(line) for line in args.out.read_text().splitlines()]
    print(json.dumps(summary(records)))


if __name__ == "__main__":
    main()
