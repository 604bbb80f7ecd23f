"""Properties: UNEP-v1 EOS and stacking-fault parity from the real JSON files, the documented
CSV, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from ingest.properties import UNEP_LEVEL, ingest_properties
from queries.properties import parity
from warehouse import models as m
from warehouse.errors import IngestError, NoMatch

REF = Path("gpumd_wizard/unep_v1_dft_ref")


def _n_properties(wh) -> int:
    with wh.session() as s:
        return s.scalar(select(func.count()).select_from(m.Property))


def test_eos_parity_matches_the_file(wh, shared_data) -> None:
    path = shared_data / REF / "eos" / "data.json"
    summary = ingest_properties(wh, path)
    assert summary.added["properties"] == 2 * 176
    data = json.loads(path.read_text())
    report = parity(wh, properties=["eos_energy"])
    t = report.table
    assert len(t) == 176 and set(t["model"]) == {"unep-v1"} and set(t["reference"]) == {UNEP_LEVEL}
    for el, block in data.items():
        rows = t[t["material"] == el].sort_values("key", key=lambda k: k.astype(float))
        np.testing.assert_allclose(rows["reference_value"], block["DFT"], rtol=0, atol=0)
        np.testing.assert_allclose(rows["model_value"], block["NEP"], rtol=0, atol=0)
        np.testing.assert_allclose(rows["key"].astype(float), block["volume"], atol=5e-7)
    err = np.concatenate([np.subtract(b["NEP"], b["DFT"]) for b in data.values()])
    (s,) = report.summary.itertuples()
    assert (s.n, s.unit) == (176, "eV/atom")
    assert s.mae == pytest.approx(np.abs(err).mean(), rel=1e-12)
    assert s.rmse == pytest.approx(np.sqrt((err ** 2).mean()), rel=1e-12)
    assert ingest_properties(wh, path).nothing_new


def test_stacking_fault_parity_matches_the_file(wh, cli, shared_data, tmp_path) -> None:
    path = shared_data / REF / "stacking_fault" / "data.json"
    res = cli("ingest", "properties", path)
    assert res.exit_code == 0, res.output
    data = json.loads(path.read_text())
    t = parity(wh, properties=["stacking_fault_energy"]).table
    assert len(t) == 16 * 2 * 11 and set(t["unit"]) == {"J/m^2"}
    for el, paths in data.items():
        for p, block in paths.items():
            rows = t[(t["material"] == el) & t["key"].str.startswith(f"path{p}/")].sort_values("key")
            np.testing.assert_array_equal(rows["reference_value"], block["DFT"])
            np.testing.assert_array_equal(rows["model_value"], block["NEP"])
    err = np.concatenate([np.subtract(b["NEP"], b["DFT"]) for ps in data.values() for b in ps.values()])
    res = cli("properties", "--property", "stacking_fault_energy", "-f", "json")
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert row["n"] == 352
    assert row["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-12)
    assert row["rmse"] == pytest.approx(np.sqrt((err ** 2).mean()), rel=1e-12)
    out = tmp_path / "parity.png"
    res = cli("plot", "properties", "--out", out)
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 1000


def test_stacking_fault_unit_is_j_per_m2_per_two_faults(shared_data) -> None:
    """The file's numbers are (E - E_0) / (2 A) of its ref.xyz, in J/m^2 (a slab with two faults)."""
    from ase.io import read
    from ase.units import J, m as metre

    frames = read(shared_data / REF / "stacking_fault" / "ref.xyz", index=":22")  # Ag, 2 paths
    data = json.loads((shared_data / REF / "stacking_fault" / "data.json").read_text())
    for p in (0, 1):
        path = frames[11 * p: 11 * (p + 1)]
        e = np.array([a.get_potential_energy() for a in path])
        cell = path[0].cell
        area = np.linalg.norm(np.cross(cell[0], cell[1]))
        gamma = (e - e[0]) / (2 * area) / (J / metre**2)
        np.testing.assert_allclose(gamma, data["Ag"][str(p)]["DFT"], atol=2e-6)


def test_documented_csv(wh, tmp_path: Path) -> None:
    path = tmp_path / "props.csv"
    path.write_text(
        "material,property,key,value,unit,source,source_type\n"
        "Cu,C11,,176.2,GPa,PBE,level_of_theory\n"
        "Cu,C11,,170.0,GPa,nep-a,model\n"
        "Cu,C11,,180.0,GPa,nep-b,model\n"
        "Cu,surface_energy,(111),1.30,J/m^2,PBE,level_of_theory\n"
        "Cu,surface_energy,(111),1.25,J/m^2,nep-a,model\n"
        "Ni,vacancy_formation_energy,,1.45,eV,nep-a,model\n")
    ingest_properties(wh, path)
    rep = parity(wh)
    s = rep.summary.set_index(["property", "model"])
    assert s.loc[("C11", "nep-a"), "mae"] == pytest.approx(6.2)
    assert s.loc[("C11", "nep-b"), "mae"] == pytest.approx(3.8)
    assert s.loc[("surface_energy", "nep-a"), "mae"] == pytest.approx(0.05)
    assert any("1 model values have no reference" in n for n in rep.notes)
    with pytest.raises(NoMatch):
        parity(wh, properties=["vacancy_formation_energy"])


def test_bad_property_rows_store_nothing(wh, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("material,property,value,unit,source\nCu,C11,176,GPa,someone-unknown\n")
    with pytest.raises(IngestError, match="neither a stored model nor a level of theory"):
        ingest_properties(wh, path)
    path.write_text("material,property,value,unit,source,source_type\n"
                    "Cu,C11,176,GPa,PBE,level_of_theory\nCu,C12,abc,GPa,PBE,level_of_theory\n")
    with pytest.raises(IngestError, match=r"bad\.csv, line 3"):
        ingest_properties(wh, path)
    assert _n_properties(wh) == 0


@pytest.mark.parametrize(("row", "message"), [
    (" Cu,C11", "material name ' Cu' starts or ends with blanks"),
    ("Cu,C11 ", "property name 'C11 ' starts or ends with blanks"),
    ("Cu," + "p" * 129, "has 129 characters; at most 128"),  # the column is VARCHAR(128)
    ("M" * 256 + ",C11", "has 256 characters; at most 255"),
], ids=["blank-material", "blank-property", "long-property", "long-material"])
def test_property_names_are_checked_like_every_name(wh, tmp_path: Path, row: str, message: str) -> None:
    """A material ' Cu' beside 'Cu' would be two materials; a name longer than its column failed
    inside PostgreSQL. Refused with the file and the line, nothing stored."""
    path = tmp_path / "names.csv"
    path.write_text("material,property,value,unit,source,source_type\n"
                    f"Cu,C12,120,GPa,PBE,level_of_theory\n{row},176,GPa,PBE,level_of_theory\n")
    with pytest.raises(IngestError, match=rf"names\.csv, line 3: .*{message}"):
        ingest_properties(wh, path)
    assert _n_properties(wh) == 0


FIXTURES = Path(__file__).parent / "fixtures" / "unep_v1"


def test_fixture_and_reference_gsfe_reproduce_data_json(shared_data) -> None:
    """GSFE recomputed from ref.xyz (DFT) and from unep-v1's predictions (CPUNEP) match data.json."""
    from ingest.unep_properties import parse_unep_predictions, parse_unep_reference

    data = json.loads((shared_data / REF / "stacking_fault" / "data.json").read_text())

    def table(records) -> dict[tuple[str, str], float]:
        return {(r.material, r.key): r.value for r in records if r.property == "stacking_fault_energy"}

    dft = table(parse_unep_reference(shared_data / REF))
    nep = table(parse_unep_predictions(FIXTURES / "unep-v1.npz", ref_dir=shared_data / REF,
                                       model="unep-v1"))
    assert len(dft) == len(nep) == 352
    for el, paths in data.items():
        for p, block in paths.items():
            keys = [(el, f"path{p}/{i:02d}") for i in range(11)]
            np.testing.assert_allclose([dft[k] for k in keys], block["DFT"], atol=2e-6)
            np.testing.assert_allclose([nep[k] for k in keys], block["NEP"], atol=2e-6)


def test_nine_models_property_parity(wh, cli, shared_data) -> None:
    res = cli("ingest", "properties", shared_data / REF)
    assert res.exit_code == 0, res.output
    models = sorted(p.stem for p in FIXTURES.glob("*.npz"))
    assert len(models) == 9
    for path in sorted(FIXTURES.glob("*.npz")):
        res = cli("ingest", "properties", path, "--ref-dir", shared_data / REF)
        assert res.exit_code == 0, res.output
    rep = parity(wh)
    s = rep.summary.set_index(["property", "model"])
    for prop, n in (("stacking_fault_energy", 352), ("bulk_modulus", 16), ("equilibrium_volume", 16)):
        assert sorted(rep.summary[rep.summary["property"] == prop]["model"]) == models
        for model in models:
            pairs = rep.table[(rep.table["property"] == prop) & (rep.table["model"] == model)]
            assert len(pairs) == n
            err = (pairs["model_value"] - pairs["reference_value"]).to_numpy()
            assert s.loc[(prop, model), "mae"] == pytest.approx(np.abs(err).mean(), rel=1e-12)
            assert s.loc[(prop, model), "rmse"] == pytest.approx(np.sqrt((err ** 2).mean()), rel=1e-12)
    peierls = rep.table[rep.table["property"] == "peierls_barrier"]
    assert sorted(peierls["material"].unique()) == ["Mo", "Ta", "V", "W"]
    dft_w = peierls[peierls["material"] == "W"]["reference_value"].iloc[0]
    assert dft_w == pytest.approx(187.2, abs=0.1)  # max of (E_i - E_0) along screw/ref.xyz, W
    b = rep.table[(rep.table["property"] == "bulk_modulus") & (rep.table["material"] == "Cu")]
    b = b.set_index("model")
    assert b.loc["unep-v1", "reference_value"] == pytest.approx(137, abs=5)  # PBE Cu, ~140 GPa
    assert abs(b.loc["unep-v1", "error"]) < 2
    nep_mae = s.xs("bulk_modulus").drop(index="eam-zhou")["mae"]
    assert nep_mae.max() < s.loc[("bulk_modulus", "eam-zhou"), "mae"]
