"""Ensemble UQ on real data: the 8 UNEP-v1 models on the UNEP-v1 DFT reference sets.

Every U and e of a sample of structures is recomputed by hand from the raw fixture predictions and
the DFT labels of ref.xyz (read with ASE, not through the warehouse) and must agree to 1e-9.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli.app import app
from cli.output import Format
from ingest.ensembles import add_to_ensemble
from queries.uq import Level, uq_summary
from queries.uq_data import read_ensemble_uq
from unep_fixtures import ALL_MODELS, DATASET, ingest_unep, load_fixture, reference_atoms, reference_labels
from warehouse import models as m, open_warehouse
from warehouse.hashing import structure_hashes

UNEP8 = tuple(x for x in ALL_MODELS if x.startswith("unep-v1"))


@pytest.fixture(scope="module")
def unep(tmp_path_factory, _pg, shared_data):
    """A warehouse with the three reference sets, the 8 UNEP-v1 models and ensemble ``unep8``."""
    assert len(UNEP8) == 8, UNEP8
    root = tmp_path_factory.mktemp("uq_unep")
    url = _pg.new_url() if _pg is not None else f"sqlite:///{root / 'catalog.sqlite'}"
    wh = open_warehouse(url, str(root / "lake"))
    ingest_unep(wh, shared_data, models=UNEP8)
    add_to_ensemble(wh, "unep8", UNEP8)
    yield wh, url, root / "lake"
    wh.close()


def _run(unep, *args):
    _, url, lake = unep
    return CliRunner().invoke(app, ["--url", url, "--lake", str(lake), *map(str, args)])


def _sid_of(wh, atoms) -> int:
    h = structure_hashes(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc)[0]
    with wh.session() as s:
        return s.scalar(select(m.Structure.id).where(m.Structure.hash == h))


def test_every_u_and_e_of_a_sample_agrees_with_numpy_by_hand(unep, shared_data):
    wh = unep[0]
    data = read_ensemble_uq(wh, ensemble="unep8", datasets=[DATASET])
    fx = {name: load_fixture(name) for name in UNEP8}
    first = fx[UNEP8[0]]
    rows = np.random.default_rng(11).choice(len(first["set"]), size=40, replace=False)
    st = data.structures.set_index("structure_id")
    for row in rows:
        set_name, frame = str(first["set"][row]), int(first["frame"][row])
        e_ref, f_ref, _ = reference_labels(shared_data, set_name, frame)
        n = int(first["n_atoms"][row])
        a, b = first["offsets"][row], first["offsets"][row + 1]
        energies = np.array([fx[k]["energy"][row] for k in UNEP8])
        forces = np.array([fx[k]["forces"][a:b] for k in UNEP8])  # (K, n, 3)
        e_mean, f_mean = energies.mean(), forces.mean(axis=0)
        u_e = np.max(np.abs(energies - e_mean)) / n
        e_e = abs(e_ref - e_mean) / n
        u_atom = np.max(np.linalg.norm(forces - f_mean, axis=2), axis=0)
        e_atom = np.linalg.norm(f_ref - f_mean, axis=1)
        sid = _sid_of(wh, reference_atoms(shared_data, set_name)[frame])
        got = st.loc[sid]
        assert got["energy_status"] == got["force_status"] == "used"
        np.testing.assert_allclose([got["u_energy"], got["e_energy"]], [u_e, e_e], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose([got["u_force"], got["e_force"]], [u_atom.max(), e_atom.max()],
                                   rtol=1e-9, atol=1e-9)
        u_got, e_got = data.atoms_of(sid)
        np.testing.assert_allclose(u_got, u_atom, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(e_got, e_atom, rtol=1e-9, atol=1e-9)


def test_uq_reports_rho_at_both_levels(unep):
    res = _run(unep, "uq", "--ensemble", "unep8", "--dataset", DATASET, "--format", "json")
    assert res.exit_code == 0, res.output
    records = json.loads(res.stdout)
    got = {(r["quantity"], r["level"]): r for r in records}
    assert set(got) == {("energy", "structure"), ("force", "structure"), ("force", "atom")}
    n_atoms = int(sum(load_fixture("unep-v1")["n_atoms"]))
    with unep[0].session() as s:
        n_members = len(s.scalars(select(m.DatasetMember.structure_id)).all())
    assert got["force", "atom"]["n"] == n_atoms
    assert got["force", "structure"]["n"] == got["energy", "structure"]["n"] == n_members
    for r in records:
        assert {"quantity", "level", "n", "spearman_rho", "ci_low", "ci_high"} <= set(r)
        assert r["ci_low"] <= r["spearman_rho"] <= r["ci_high"]
        assert r["n_missing"] == r["n_failed"] == r["n_no_reference"] == 0
    # ensemble disagreement ranks the force error well on these sets (0.96 / 0.79 when written)
    assert got["force", "structure"]["spearman_rho"] > 0.8
    assert got["force", "atom"]["spearman_rho"] > 0.6
    assert got["energy", "structure"]["spearman_rho"] > 0.3


def test_level_breakdowns_and_other_reports(unep):
    res = _run(unep, "uq", "-e", "unep8", "-d", DATASET, "--level", "atom", "--by", "subset",
               "-f", "json", "--n-boot", "50")
    assert res.exit_code == 0, res.output
    recs = json.loads(res.stdout)
    assert {r["group"] for r in recs} == {"eos", "stacking_fault", "screw"}
    assert all(r["level"] == "atom" for r in recs)
    res = _run(unep, "uq", "-e", "unep8", "-d", DATASET, "--by", "element", "--level", "structure",
               "-f", "json", "--n-boot", "20")
    assert res.exit_code == 0, res.output
    assert len({r["group"] for r in json.loads(res.stdout)}) == 16  # the 16 UNEP-v1 metals
    res = _run(unep, "uq", "-e", "unep8", "-d", DATASET, "--by", "element", "--level", "atom",
               "-f", "json", "--n-boot", "5")
    by_el = json.loads(res.stdout)
    assert sum(r["n"] for r in by_el) == int(sum(load_fixture("unep-v1")["n_atoms"]))
    res = _run(unep, "uq", "-e", "unep8", "-d", DATASET, "--by", "n_elements", "-f", "json",
               "--n-boot", "5")
    assert {r["group"] for r in json.loads(res.stdout)} == {"1"}  # all UNEP-v1 sets are unaries
    res = _run(unep, "uq", "-e", "unep8", "-d", DATASET, "--show", "calibration", "-f", "json")
    cal = json.loads(res.stdout)
    n_struct = sum(r["n"] for r in cal if (r["quantity"], r["level"]) == ("energy", "structure"))
    assert n_struct == json.loads(_run(unep, "uq", "-e", "unep8", "-d", DATASET, "--level",
                                       "structure", "-f", "json", "--n-boot", "10").stdout)[0]["n"]
    res = _run(unep, "uq", "-e", "unep8", "-d", DATASET, "--show", "threshold", "-f", "json")
    thr = json.loads(res.stdout)
    for r in thr:  # ensemble disagreement catches the high-error cases far above chance
        assert r["precision"] > 2 * r["base_rate"]
    for fmt in [f.value for f in Format]:
        res = _run(unep, "uq", "-e", "unep8", "-d", DATASET, "-f", fmt, "--n-boot", "10")
        assert res.exit_code == 0 and "unep8" in res.output


def test_summary_does_not_depend_on_batch_size(unep):
    wh = unep[0]
    a = read_ensemble_uq(wh, ensemble="unep8", datasets=[DATASET])
    b = read_ensemble_uq(wh, ensemble="unep8", datasets=[DATASET], batch_atoms=1000)
    np.testing.assert_array_equal(a.atom_u, b.atom_u)
    np.testing.assert_array_equal(a.atom_e, b.atom_e)
    ra = uq_summary(a, level=Level.ATOM, n_boot=20)
    rb = uq_summary(b, level=Level.ATOM, n_boot=20)
    assert ra["spearman_rho"].iloc[0] == rb["spearman_rho"].iloc[0]
    assert not math.isnan(ra["spearman_rho"].iloc[0])


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_uq_writes_a_figure(unep, tmp_path, suffix):
    out = tmp_path / f"uq{suffix}"
    res = _run(unep, "plot", "uq", "-e", "unep8", "-d", DATASET, "--out", out)
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 10_000
    bad = _run(unep, "plot", "uq", "-e", "unep8", "-d", DATASET, "--out", tmp_path / "x.txt")
    assert bad.exit_code == 1 and ".png" in bad.output


def test_threshold_by_value_in_report_units(unep):
    data = read_ensemble_uq(unep[0], ensemble="unep8", datasets=[DATASET])
    res = _run(unep, "uq", "-e", "unep8", "-d", DATASET, "--show", "threshold", "--threshold", "50",
               "--level", "atom", "--high-error-fraction", "0.05", "-f", "json")
    assert res.exit_code == 0, res.output
    (r,) = json.loads(res.stdout)
    flagged = data.atom_u * 1000 > 50  # meV/Å
    high = data.atom_e >= np.sort(data.atom_e)[::-1][int(np.ceil(0.05 * len(data.atom_e))) - 1]
    assert (r["rule"], r["n_flagged"], r["n_high"]) == ("U > 50", flagged.sum(), high.sum())
    assert r["n_caught"] == (flagged & high).sum()
    assert r["mean_e_flagged"] == pytest.approx(1000 * data.atom_e[flagged].mean(), rel=1e-12)
