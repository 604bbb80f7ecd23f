"""Every format ingested, with counts and values checked against an independent read of the file.

"Independent" means not through the reader under test: a few lines of regex/numpy over the text
(extended XYZ, OUTCAR, vasprun.xml), the JSON itself (mlearn), ASE itself (ase.db, pickles).
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from ase.units import GPa

from ingest_helpers import snapshot, stored_predictions, stored_references

TO_GPA = 1 / GPa


# -- an independent extended XYZ reader (text + regex) -------------------------------------------

_KV = re.compile(r'(\w+)=("([^"]*)"|(\S+))')


def read_xyz_text(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    lines = opener(path, "rt").read().splitlines()
    frames, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        n = int(lines[i])
        info = {m.group(1): m.group(3) if m.group(3) is not None else m.group(4)
                for m in _KV.finditer(lines[i + 1])}
        props = info["Properties"].split(":")
        cols, start = {}, 0
        for name, _, count in zip(props[::3], props[1::3], props[2::3], strict=True):
            cols[name] = slice(start, start + int(count))
            start += int(count)
        table = [ln.split() for ln in lines[i + 2 : i + 2 + n]]
        arrays = {name: np.array([row[sl] for row in table]) for name, sl in cols.items()}
        frames.append({"info": info, "arrays": arrays, "n": n})
        i += n + 2
    return frames


def _floats(text: str) -> np.ndarray:
    return np.array(text.split(), dtype=float)


def _lattice(info: dict) -> np.ndarray:
    return _floats(info["Lattice"]).reshape(3, 3)


def _voigt_rowmajor(values: np.ndarray) -> np.ndarray:
    t = values.reshape(3, 3)
    return np.array([t[0, 0], t[1, 1], t[2, 2], t[1, 2], t[0, 2], t[0, 1]])


def _ok(res) -> str:
    assert res.exit_code == 0, res.output
    return res.output


# -- extended XYZ ------------------------------------------------------------------------------

SAMPLE_XYZ = ["gpumd/nep_train_PbTe/train.xyz", "uf3/test.xyz",
              "gpumd_wizard/unep_v1_dft_ref/eos/ref.xyz",
              "gpumd_wizard/unep_v1_dft_ref/stacking_fault/ref.xyz",
              "gpumd_wizard/unep_v1_dft_ref/screw/ref.xyz"]


@pytest.mark.parametrize("rel", SAMPLE_XYZ)
def test_c_parser_gives_exactly_what_ase_gives(rel, shared_data) -> None:
    """The fast reader (extxyz's C parser) and ASE's reader agree bit for bit on real files."""
    from ingest.extxyz import parse_extxyz

    c = list(parse_extxyz(shared_data / rel, reader="c"))
    a = list(parse_extxyz(shared_data / rel, reader="ase"))
    assert len(c) == len(a) > 0
    for x, y in zip(c, a, strict=True):
        for attr in ("numbers", "positions", "cell", "pbc"):
            assert np.array_equal(getattr(x, attr), getattr(y, attr)), (rel, x.index, attr)
        for attr in ("energy", "free_energy", "forces", "stress"):
            u, v = getattr(x.labels, attr), getattr(y.labels, attr)
            assert (u is None and v is None) or np.array_equal(u, v), (rel, x.index, attr)
        assert (x.config_type, x.weight) == (y.config_type, y.weight)


def test_gpumd_train_xyz_force_and_energy(cli, wh, shared_data) -> None:
    """GPUMD's own layout: energy= (total eV), singular force:R:3, config_type."""
    path = shared_data / "gpumd/nep_train_PbTe/train.xyz"
    _ok(cli("ingest", "structures", path, "-d", "pbte", "-l", "PBE"))
    text = read_xyz_text(path)
    refs = stored_references(wh, "pbte")
    assert len(refs) == len(text) == 25
    for r, t in zip(refs, text, strict=True):
        assert r["energy"] == float(t["info"]["energy"])
        assert np.array_equal(r["forces"], t["arrays"]["force"].astype(float))
        assert r["stress"] is None and r["config_type"] == t["info"]["config_type"] == r["subset"]


def _variant(src: Path, dst: Path, fn) -> Path:
    text = src.read_text()
    out = []
    for line in text.splitlines():
        out.append(fn(line) if "Lattice=" in line else line)
    data = "\n".join(out) + "\n"
    if dst.name.endswith(".gz"):
        with gzip.open(dst, "wt") as fh:
            fh.write(data)
    else:
        dst.write_text(data)
    return dst


def _six(line: str) -> str:
    m = re.search(r'virial="([^"]*)"', line)
    six = " ".join(repr(float(v)) for v in _voigt_rowmajor(_floats(m.group(1))))
    return line.replace(m.group(0), f'virial="{six}"')


@pytest.mark.parametrize("variant", ["as-is", "capitalised", "virial-6", "gzip-extxyz", "weight-tag"])
def test_gpumd_virial_variants(variant, cli, wh, shared_data, tmp_path) -> None:
    """virial= (9 components, total eV) -> stress = -W/V in GPa, ASE sign, Voigt; the same values
    from Energy=/Virial=, from a 6-component virial, from .extxyz.gz; weight and config_type kept."""
    src = shared_data / "gpumd_wizard/unep_v1_dft_ref/eos/ref.xyz"
    fns = {
        "as-is": ("ref.xyz", lambda ln: ln),
        "capitalised": ("cap.xyz", lambda ln: ln.replace("virial=", "Virial=").replace("energy=", "Energy=")),
        "virial-6": ("six.xyz", _six),
        "gzip-extxyz": ("ref.extxyz.gz", lambda ln: ln),
        "weight-tag": ("w.xyz", lambda ln: ln + " weight=2.5 config_type=eos"),
    }
    name, fn = fns[variant]
    path = _variant(src, tmp_path / name, fn)
    if variant == "virial-6":  # six numbers are read only in an order the user states
        res = cli("ingest", "structures", path, "-d", "eos", "-l", "DFT")
        assert res.exit_code == 1 and "--voigt-order" in res.output
        _ok(cli("ingest", "structures", path, "-d", "eos", "-l", "DFT",
                "--voigt-order", "xx,yy,zz,yz,xz,xy"))
    else:
        _ok(cli("ingest", "structures", path, "-d", "eos", "-l", "DFT"))
    refs = stored_references(wh, "eos")
    text = read_xyz_text(src)
    assert len(refs) == len(text) == 176
    for r, t in zip(refs, text, strict=True):
        volume = abs(np.linalg.det(_lattice(t["info"])))
        expected = -_voigt_rowmajor(_floats(t["info"]["virial"])) / volume * TO_GPA
        np.testing.assert_allclose(r["stress"], expected, rtol=1e-12, atol=1e-12)
        assert r["energy"] == float(t["info"]["energy"])
        assert np.array_equal(r["forces"], t["arrays"]["forces"].astype(float))
    if variant == "weight-tag":
        assert {(r["weight"], r["config_type"]) for r in refs} == {(2.5, "eos")}


def test_ase_written_extxyz_with_calculator_results(cli, wh, tmp_path) -> None:
    """ASE's own files: energy, free_energy, forces, stress as calculator results (stress eV/Å^3)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.io import read, write

    frames = []
    for i, el in enumerate(["Cu", "Ni", "Al"]):
        a = bulk(el, cubic=True).repeat(2)
        a.rattle(0.05, seed=i)
        a.set_cell(a.cell * (1 + 0.01 * i), scale_atoms=True)
        a.calc = EMT()
        a.get_potential_energy(), a.get_forces(), a.get_stress()
        frames.append(a)
    path = tmp_path / "emt.extxyz"
    write(path, frames, format="extxyz")
    _ok(cli("ingest", "structures", path, "-d", "emt"))
    refs = stored_references(wh, "emt")
    for r, a in zip(refs, read(path, ":"), strict=True):
        assert r["energy"] == a.get_potential_energy()
        assert np.array_equal(r["forces"], a.get_forces())
        np.testing.assert_allclose(r["stress"], a.get_stress() * TO_GPA, rtol=1e-14)


def test_same_structure_in_two_datasets_is_stored_once(cli, wh, shared_data) -> None:
    path = shared_data / "uf3/test.xyz"
    _ok(cli("ingest", "structures", path, "-d", "one", "--split", "train"))
    out = _ok(cli("ingest", "structures", path, "-d", "two", "--split", "test"))
    assert "5 members" in out and "already present 5 structures" in out
    counts = wh.counts()
    assert counts["structures"] == 5 and counts["dataset_members"] == 10 and counts["references"] == 5
    assert {r["split"] for r in stored_references(wh, "two")} == {"test"}
    out = _ok(cli("ingest", "structures", path, "-d", "one", "--split", "train"))
    assert "nothing new was added" in out


# -- VASP -------------------------------------------------------------------------------------

def _outcar_steps(path: Path) -> list[dict]:
    """TOTEN, energy(sigma->0) and the 'in kB' stress line of every ionic step, by regex."""
    text = gzip.open(path, "rt", errors="replace").read()
    toten = [float(x) for x in re.findall(r"free  energy   TOTEN\s+=\s+(\S+)", text)]
    sigma0 = [float(x) for x in re.findall(r"energy\(sigma->0\)\s+=\s+(\S+)", text)]
    kb = [_floats(x) for x in re.findall(r"^\s+in kB\s+(.+)$", text, flags=re.M)]
    return [{"free_energy": f, "energy": e, "kbar": s} for f, e, s in zip(toten, sigma0, kb, strict=False)]


@pytest.mark.parametrize("name,level,n", [
    ("OUTCAR_vasp_6.3.gz", "VASP-PBE-520eV", 1),
    ("OUTCAR.nbands_overridden.gz", "VASP-PBE-500eV", 7),
])
def test_outcar(name, level, n, cli, wh, shared_data) -> None:
    path = shared_data / "vasp/pymatgen" / name
    _ok(cli("ingest", "structures", path, "-d", "vasp"))
    refs = stored_references(wh, "vasp")
    steps = _outcar_steps(path)
    assert len(refs) == n and refs[0]["level"] == level
    # the last TOTEN/sigma->0 pair of each ionic step is the converged one; 'in kB' is per step
    for r, kb in zip(refs, [s["kbar"] for s in steps], strict=False):
        xx, yy, zz, xy, yz, zx = kb  # VASP's order
        np.testing.assert_allclose(r["stress"], -0.1 * np.array([xx, yy, zz, yz, zx, xy]), atol=2e-6)
    assert refs[-1]["free_energy"] == pytest.approx(steps[-1]["free_energy"], abs=1e-6)


def _vasprun_steps(path: Path) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    root = ET.parse(opener(path)).getroot()
    out = []
    for calc in root.findall("calculation"):
        energy = {i.get("name"): float(i.text) for i in calc.findall("energy")[-1].findall("i")}
        if abs(energy["e_0_energy"] - energy["e_fr_energy"]) > 1.0:
            # VASP 5.4.4 writes a garbage calculation-level e_0_energy for meta-GGA runs (ASE
            # works around it); the last electronic step's value is the real one (to ~1e-5 eV)
            last = calc.findall("scstep")[-1].find("energy")
            energy["e_0_energy"] = float(last.find("i[@name='e_0_energy']").text)
        forces = np.array([_floats(v.text) for v in calc.find("varray[@name='forces']")])
        stress = calc.find("varray[@name='stress']")
        kbar = None if stress is None else np.array([_floats(v.text) for v in stress])
        out.append({"e0": energy["e_0_energy"], "efr": energy["e_fr_energy"], "forces": forces, "kbar": kbar})
    return out


@pytest.mark.parametrize("rel,level", [
    ("vasp/pymatgen/vasprun.Al.xml.gz", "VASP-r2SCAN-680eV"),
    ("vasp/pymatgen/vasprun.etest4.xml.gz", "VASP-PBE-D3BJ-295.446eV"),
    ("vasp/dpdata/Ti-aimd-nwrite0/vasprun.xml", "VASP-PBE-350eV"),
])
def test_vasprun(rel, level, cli, wh, shared_data) -> None:
    path = shared_data / rel
    _ok(cli("ingest", "structures", path, "-d", "vasp"))
    refs = stored_references(wh, "vasp")
    steps = _vasprun_steps(path)
    assert len(refs) == len(steps) and refs[0]["level"] == level
    for r, s in zip(refs, steps, strict=True):
        assert r["energy"] == pytest.approx(s["e0"], abs=1e-5)
        assert r["free_energy"] == pytest.approx(s["efr"], abs=1e-8)
        np.testing.assert_allclose(r["forces"], s["forces"], atol=1e-8)
        np.testing.assert_allclose(r["stress"], -0.1 * _voigt_rowmajor(s["kbar"]), atol=1e-6)


def test_level_of_theory_from_the_file_unless_given(cli, wh, shared_data) -> None:
    path = shared_data / "vasp/pymatgen/vasprun.Al.xml.gz"
    _ok(cli("ingest", "structures", path, "-d", "al"))
    _ok(cli("ingest", "structures", path, "-d", "al2", "-l", "my-r2scan"))
    from sqlalchemy import select

    from warehouse import models as m

    with wh.session() as s:
        lot = s.scalar(select(m.LevelOfTheory).where(m.LevelOfTheory.name == "VASP-r2SCAN-680eV"))
        assert (lot.code, lot.functional, lot.cutoff_ev, lot.spin) == ("VASP", "r2SCAN", 680.0, "collinear")
        assert lot.code_version.startswith("5.4.4") and "PAW_PBE Al" in lot.pseudopotentials
        assert s.scalar(select(m.LevelOfTheory).where(m.LevelOfTheory.name == "my-r2scan")) is not None


# -- ASE database, pickles, mlearn ------------------------------------------------------------

def _emt_frames(n: int = 4):
    from ase.build import bulk
    from ase.calculators.emt import EMT

    frames = []
    for i in range(n):
        a = bulk("Cu" if i % 2 else "Ni", cubic=True).repeat(2)
        a.rattle(0.04, seed=10 + i)
        a.calc = EMT()
        a.get_potential_energy(), a.get_forces(), a.get_stress()
        frames.append(a)
    return frames


def test_ase_db_written_by_ase(cli, wh, tmp_path) -> None:
    import ase.db

    path = tmp_path / "incumbent.db"
    frames = _emt_frames()
    with ase.db.connect(path) as db:
        for i, a in enumerate(frames):
            db.write(a, config_type=f"rattled{i % 2}", weight=1.5)
    _ok(cli("ingest", "structures", path, "-d", "migrated"))
    refs = stored_references(wh, "migrated")
    assert len(refs) == len(frames)
    for i, (r, a) in enumerate(zip(refs, frames, strict=True)):
        assert r["energy"] == a.get_potential_energy()
        np.testing.assert_array_equal(r["forces"], a.get_forces())
        np.testing.assert_allclose(r["stress"], a.get_stress() * TO_GPA, rtol=1e-14)
        assert (r["config_type"], r["weight"]) == (f"rattled{i % 2}", 1.5)


def test_gracemaker_pickle_needs_trust(cli, wh, tmp_path) -> None:
    import pandas as pd

    frames = _emt_frames(3)
    df = pd.DataFrame({
        "ase_atoms": [a.copy() for a in frames],
        "energy": [a.get_potential_energy() for a in frames],
        "forces": [a.get_forces() for a in frames],
        "stress": [a.get_stress() for a in frames],
        "energy_corrected": [0.0] * 3,
    })
    path = tmp_path / "train.pkl.gz"
    df.to_pickle(path)
    before = snapshot(wh)
    res = cli("ingest", "structures", path, "-d", "grace")
    assert res.exit_code == 1 and "--trust-pickle" in res.output and "arbitrary code" in res.output
    assert snapshot(wh) == before and wh.counts()["ingest_runs"] == 0
    _ok(cli("ingest", "structures", path, "-d", "grace", "--trust-pickle"))
    refs = stored_references(wh, "grace")
    for r, a in zip(refs, frames, strict=True):
        assert r["energy"] == a.get_potential_energy()
        np.testing.assert_array_equal(r["forces"], a.get_forces())
        np.testing.assert_allclose(r["stress"], a.get_stress() * TO_GPA, rtol=1e-14)


@pytest.mark.parametrize("rel", ["mlearn/data/Mo/test.json", "mlearn/data/Cu/test.json"])
def test_mlearn_json(rel, cli, wh, shared_data) -> None:
    path = shared_data / rel
    _ok(cli("ingest", "structures", path, "-d", "mlearn"))
    records = json.loads(path.read_text())
    refs = stored_references(wh, "mlearn")
    assert len(refs) == len(records)
    for r, rec in zip(refs, records, strict=True):
        out = rec["outputs"]
        assert r["energy"] == out["energy"] and r["config_type"] == rec["group"]
        np.testing.assert_array_equal(r["forces"], np.array(out["forces"]))
        xx, yy, zz, xy, xz, yz = out["virial_stress"]  # kbar, compressive positive (see units test)
        np.testing.assert_allclose(r["stress"], -0.1 * np.array([xx, yy, zz, yz, xz, xy]), rtol=1e-14)


# -- GPUMD outputs: both layouts, --xyz, loss.out ---------------------------------------------

def _legacy_folder(src: Path, dst: Path) -> Path:
    """The same outputs in the legacy layout: virial as 6 N rows of (pred, ref), component-major,
    with zero references where there is no target (as older GPUMD wrote them)."""
    dst.mkdir()
    for name in ("train.xyz", "energy_train.out", "force_train.out"):
        shutil.copy(src / name, dst / name)
    v = np.loadtxt(src / "virial_train.out")
    pred, ref = v[:, :6], np.where(v[:, 6:] == -1e6, 0.0, v[:, 6:])
    np.savetxt(dst / "virial_train.out", np.column_stack([pred.T.ravel(), ref.T.ravel()]))
    return dst


def test_gpumd_legacy_layout_gives_the_same_predictions(cli, wh, shared_data, tmp_path) -> None:
    src = shared_data / "gpumd/nep_train_PbTe"
    _ok(cli("ingest", "gpumd", src, "-m", "current", "-d", "pbte"))
    _ok(cli("ingest", "gpumd", _legacy_folder(src, tmp_path / "legacy"), "-m", "legacy", "-d", "pbte"))
    cur, leg = stored_predictions(wh, "current"), stored_predictions(wh, "legacy")
    assert len(cur) == len(leg) == 25
    for sid, p in cur.items():
        assert leg[sid]["energy"] == p["energy"]
        np.testing.assert_array_equal(leg[sid]["forces"], p["forces"])
        np.testing.assert_allclose(leg[sid]["stress"], p["stress"], rtol=1e-12)


def test_gpumd_prediction_folder_with_xyz_and_loss(cli, wh, shared_data) -> None:
    pred = shared_data / "gpumd/nep_prediction_PbTe"
    res = cli("ingest", "gpumd", pred, "-m", "nep", "-d", "pbte")
    assert res.exit_code == 1 and "--xyz" in res.output
    _ok(cli("ingest", "gpumd", pred, "-m", "nep", "-d", "pbte",
            "--xyz", shared_data / "gpumd/nep_train_PbTe/train.xyz"))
    p = stored_predictions(wh, "nep")
    energies = np.loadtxt(pred / "energy_train.out")[:, 0]
    refs = stored_references(wh, "pbte")
    got = np.array([p[r["structure_id"]]["energy"] / 250 for r in refs])
    np.testing.assert_allclose(got, energies, rtol=1e-12)
    # loss.out of the training folder becomes the model's training record, once
    _ok(cli("ingest", "gpumd", shared_data / "gpumd/nep_train_PbTe", "-m", "nep-train", "-d", "pbte"))
    out = _ok(cli("ingest", "gpumd", shared_data / "gpumd/nep_train_PbTe", "-m", "nep-train", "-d", "pbte"))
    assert "1 training records" in out.split("already present")[1]
    from sqlalchemy import select

    from warehouse import models as m

    with wh.session() as s:
        rec = s.scalars(select(m.TrainingRecord)).one()
        path = s.get(m.LakeFile, rec.lake_file_id).path
    last = np.loadtxt(shared_data / "gpumd/nep_train_PbTe/loss.out")[-1]
    assert rec.summary["generations"] == 20000 and rec.summary["rmse_energy_train"] == last[4]
    assert rec.summary["rmse_force_train"] == pytest.approx(0.03990)
    assert wh.lake.read(path).num_rows == 200


# -- predictions from any program ---------------------------------------------------------------

def _prediction_file(src: Path, dst: Path, *, shuffle: bool, seed: int = 7) -> dict:
    """Write src's structures with made-up predictions (energy_pred, forces_pred), in shuffled
    frame order and with the atoms of every other frame permuted. Returns what was written, by
    the frame's original index."""
    from ase.io import read, write

    rng = np.random.default_rng(seed)
    frames = read(src, ":")
    order = rng.permutation(len(frames)) if shuffle else np.arange(len(frames))
    written, out = {}, []
    for k in order:
        a = frames[k].copy()
        a.calc = None
        a.info = {"energy_pred": -4.0 * len(a) + 0.1 * k}
        f = rng.standard_normal((len(a), 3))
        perm = rng.permutation(len(a)) if (shuffle and k % 2) else np.arange(len(a))
        a = a[perm]
        a.arrays["forces_pred"] = f[perm]
        out.append(a)
        written[int(k)] = {"energy": -4.0 * len(a) + 0.1 * k, "forces": f}
    write(dst, out, format="extxyz")
    return written


@pytest.mark.parametrize("shuffle", [False, True], ids=["in-order", "shuffled-and-permuted"])
def test_predictions_matched_by_content_hash(shuffle, cli, wh, shared_data, tmp_path) -> None:
    src = shared_data / "uf3/test.xyz"
    _ok(cli("ingest", "structures", src, "-d", "w"))
    path = tmp_path / "pred.xyz"
    written = _prediction_file(src, path, shuffle=shuffle)
    out = _ok(cli("ingest", "predictions", path, "--model", "anyprog"))
    assert "5 predictions" in out
    preds = stored_predictions(wh, "anyprog")
    for idx, r in enumerate(stored_references(wh, "w")):
        p = preds[r["structure_id"]]
        assert p["energy"] == pytest.approx(written[idx]["energy"], abs=1e-9)
        np.testing.assert_allclose(p["forces"], written[idx]["forces"], atol=1e-7)
    # the same file again adds nothing; named keys work the same
    assert "nothing new" in _ok(cli("ingest", "predictions", path, "-m", "anyprog"))
    _ok(cli("ingest", "predictions", path, "-m", "named", "--energy-key", "energy_pred",
            "--forces-key", "forces_pred"))
    assert len(stored_predictions(wh, "named")) == 5


def test_predictions_of_unknown_structures_are_refused(cli, wh, shared_data, tmp_path) -> None:
    _ok(cli("ingest", "structures", shared_data / "uf3/test.xyz", "-d", "w"))
    before = snapshot(wh)
    path = tmp_path / "other.xyz"
    _prediction_file(shared_data / "gpumd_wizard/unep_v1_dft_ref/eos/ref.xyz", path, shuffle=False)
    res = cli("ingest", "predictions", path, "-m", "m")
    assert res.exit_code == 1
    assert "176 of 176 structures are not in the warehouse" in res.output and "frame 0" in res.output
    assert snapshot(wh) == before
    res = cli("ingest", "predictions", shared_data / "uf3/test.xyz", "-m", "m", "--energy-key", "nope")
    assert res.exit_code == 1 and "'nope'" in res.output and "frame 0" in res.output
    assert snapshot(wh) == before


def test_predictions_from_calculator_results(cli, wh, tmp_path) -> None:
    from ase.io import write

    frames = _emt_frames(2)
    ref = tmp_path / "ref.xyz"
    write(ref, [a.copy() for a in frames], format="extxyz")  # copies carry no calculator
    _ok(cli("ingest", "structures", ref, "-d", "emt-ref"))
    path = tmp_path / "emt.xyz"
    write(path, frames, format="extxyz")
    _ok(cli("ingest", "predictions", path, "-m", "emt"))
    preds = stored_predictions(wh, "emt")
    for r, a in zip(stored_references(wh, "emt-ref"), frames, strict=True):
        p = preds[r["structure_id"]]
        assert p["energy"] == a.get_potential_energy()
        np.testing.assert_allclose(p["stress"], a.get_stress() * TO_GPA, rtol=1e-14)


def test_model_add_and_list(cli, wh, tmp_path, shared_data) -> None:
    nep = shared_data / "gpumd/nep_train_PbTe/nep.txt"
    _ok(cli("model", "add", "pbte-nep", "--family", "NEP", "--version", "4", "--n-parameters", "1234",
            "--training-data", "PbTe train.xyz", "--level-of-theory", "PBE", "--licence", "GPL-3.0",
            "--url", "https://github.com/brucefan1983/GPUMD", "--doi", "10.1103/PhysRevB.104.104309",
            "--file", nep))
    out = _ok(cli("model", "add", "pbte-nep", "--version", "4.1"))
    assert "set version" in out
    rows = json.loads(_ok(cli("model", "list", "-f", "json")))
    (row,) = rows
    import hashlib

    assert row["file_sha256"] == hashlib.sha256(nep.read_bytes()).hexdigest()
    assert (row["family"], row["version"], row["n_parameters"], row["level_of_theory"]) == ("NEP", "4.1", 1234, "PBE")
    assert row["licence"] == "GPL-3.0" and row["doi"].startswith("10.1103")


def test_the_light_format_list_names_every_structure_reader() -> None:
    """ingest.formats (imported before the catalog code) lists exactly the readers of ingest.api."""
    from ingest.api import STRUCTURE_READERS
    from ingest.formats import FORMATS

    assert tuple(STRUCTURE_READERS) == FORMATS
