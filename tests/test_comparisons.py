"""Every comparison on equal terms (issue 16: defects 1, 6 and 10), on real data.

Data: the UNEP-v1 DFT reference sets with real models' predictions (tests/fixtures/unep_v1).
``CROWNED`` is made to look like the EMT-on-Mo case of the issue: every prediction failed except
two 2-atom bcc cells of the eos set, whose forces are zero by symmetry, so its force RMSE over
its two ok structures is ~0 and it would top any ranking that ignores coverage. Timings come in
two protocols: a Mo cell (432 and 440 atoms: one protocol, within 10 %) and an Al cell (256).
Expected values are computed independently with numpy from the fixture files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leaderboard_helpers import unep_diffs
from unep_fixtures import DATASET, fixture_rows, ingest_unep, load_fixture
from warehouse import open_warehouse
from warehouse.errors import NoMatch

CROWNED = "unep-v1-6-4-50"
MODELS = ("unep-v1", "eam-zhou", "unep-v1-4-4-30", CROWNED)
CPU = "AMD EPYC 7763 x16 cores"
ROWS = [int(r) for r in fixture_rows()]


def crowned_rows() -> list[int]:
    d = load_fixture("unep-v1")
    return [r for r in ROWS if d["set"][r] == "eos" and d["n_atoms"][r] == 2][:2]


TIMINGS = (
    "model,task,hardware,cpu_model,cpu_cores,system,precision,n_atoms,n_steps,wall_s,atom_steps_per_s\n"
    + "".join(f"{mo},md,{CPU},AMD EPYC 7763,16,{sys_},float64,{n},,,{rate}\n" for mo, sys_, n, rate in (
        ("unep-v1", "Mo bcc 6x6x6", 432, 2.1e5), ("unep-v1-4-4-30", "Mo bcc 6x6x6", 440, 6.3e5),
        (CROWNED, "Mo bcc 6x6x6", 432, 3.0e5), ("eam-zhou", "Mo bcc 6x6x6", 432, 4.0e6),
        ("eam-zhou", "Al fcc 4x4x4", 256, 9.0e6), ("unep-v1", "Al fcc 4x4x4", 256, 2.5e5),
    ))
)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, _pg, shared_data):
    from ingest.ensembles import add_to_ensemble
    from ingest.timings import ingest_timings

    tmp = tmp_path_factory.mktemp("cmp")
    url = _pg.new_url() if _pg is not None else f"sqlite:///{tmp / 'catalog.sqlite'}"
    keep = set(crowned_rows())
    with open_warehouse(url, str(tmp / "lake")) as wh:
        ingest_unep(wh, shared_data, models=MODELS, fail={CROWNED: [r for r in ROWS if r not in keep]})
        # a second dataset (the eos set again) that a front must not pool silently
        ingest_unep(wh, shared_data, models=("unep-v1",), sets=("eos",), dataset="unep-eos")
        (tmp / "t.csv").write_text(TIMINGS)
        ingest_timings(wh, tmp / "t.csv")
        add_to_ensemble(wh, "mixed", ["unep-v1", "eam-zhou"])
    return url, str(tmp / "lake")


@pytest.fixture
def cw(loaded):
    w = open_warehouse(*loaded)
    yield w
    w.close()


@pytest.fixture(scope="module")
def diffs(shared_data):
    return {mo: unep_diffs(shared_data, mo, ROWS) for mo in ("unep-v1", "eam-zhou")}


def shifted_energy_errors(d: dict[str, list]) -> np.ndarray:
    """dE (eV/atom) minus one least-squares shift per element: every structure is one element,
    so the fit is the mean dE of that element's structures."""
    de, el = np.array(d["de"]), np.array(d["element"])
    mu = {e: de[el == e].mean() for e in set(el)}
    return de - np.array([mu[e] for e in el])


# -- defect 1: a model with failures crowned; datasets pooled; costs of different cells mixed --


def test_incomplete_model_is_never_on_the_front(cw):
    from queries.pareto import pareto

    df = pareto(cw, metric="force-rmse", datasets=[DATASET], hardware=[CPU])
    crowned = df[df["model"] == CROWNED]
    assert (crowned["error"] < 1e-3).all()  # the trap: ~0 over its two symmetric cells
    assert not crowned["on_front"].any()
    assert "2 of 578 ok" in crowned["note"].iloc[0]
    assert df[df["on_front"]]["model"].isin(["unep-v1", "eam-zhou", "unep-v1-4-4-30"]).all()
    assert df["on_front"].any()


def test_datasets_are_never_pooled_silently(cw):
    from queries.pareto import pareto

    with pytest.raises(NoMatch, match="--pool"):
        pareto(cw, metric="force-rmse", hardware=[CPU])
    pooled = pareto(cw, metric="force-rmse", hardware=[CPU], pool=True)
    assert set(pooled["datasets"]) == {f"pooled(unep-eos+{DATASET})"}


def test_costs_are_compared_within_one_protocol(cw):
    from queries.pareto import pareto

    df = pareto(cw, metric="force-rmse", datasets=[DATASET], hardware=[CPU])
    for _, part in df.groupby("protocol"):
        assert part["timing_system"].nunique() == 1
        n = part["timing_n_atoms"].astype(float)
        assert n.max() <= 1.1 * n.min()
    mo = df[df["timing_system"] == "Mo bcc 6x6x6"]
    assert set(mo["model"]) == set(MODELS) and mo["protocol"].nunique() == 1  # 432 and 440 atoms
    al = df[df["timing_system"] == "Al fcc 4x4x4"]
    assert set(al["model"]) == {"unep-v1", "eam-zhou"}
    # eam-zhou's faster Al record never dominates the Mo comparison
    eam_mo = mo.set_index("model").loc["eam-zhou"]
    assert eam_mo["atom_steps_per_s"] == pytest.approx(4.0e6)
    assert any("2 timing protocols" in n for n in df.attrs["notes"])
    assert "Force RMSE (meV/Å)" in df.attrs["error_source"] and "task=md" in df.attrs["cost_source"]


def test_leaderboard_ranks_only_complete_models(cw):
    from queries.leaderboard import leaderboard_report

    report = leaderboard_report(cw, datasets=[DATASET], metric="force_rmse")
    t = report.table.set_index("model")
    assert pd.isna(t.loc[CROWNED, "rank"]) and report.table["model"].iloc[-1] == CROWNED
    assert sorted(t["rank"].dropna().astype(int)) == [1, 2, 3]
    assert any(CROWNED in n and "2 of 578 ok" in n for n in report.notes)


def test_incomplete_model_is_never_set_in_bold(cw):
    from queries.export import best_mask
    from queries.leaderboard import leaderboard

    table = leaderboard(cw, datasets=[DATASET])
    mask = best_mask(table, ["force_rmse"], ["dataset"])
    best = table.loc[mask["force_rmse"], "model"].tolist()
    assert best == ["unep-v1"]  # not CROWNED, whose ~0 comes from 2 of 578 structures


def test_common_compares_on_the_shared_structures(cw, diffs):
    from queries.leaderboard import leaderboard_report

    report = leaderboard_report(cw, datasets=[DATASET], models=["unep-v1", CROWNED],
                                metric="force_rmse", common=True)
    t = report.table.set_index("model")
    assert (t["n_structures"] == 2).all() and (t["n_failed"] == 0).all()
    assert t["rank"].notna().all()
    assert len(report.left_out) == len(ROWS) - 2
    assert set(report.left_out["missing_for"]) == {CROWNED}
    assert any("compared on the 2 of 578 structures" in n and "576 left out" in n
               for n in report.notes)
    kept = [ROWS.index(r) for r in crowned_rows()]
    df = np.concatenate([diffs["unep-v1"]["df"][i] for i in kept])
    assert t.loc["unep-v1", "force_rmse"] == pytest.approx(1000 * np.sqrt(np.mean(df**2)), rel=1e-9)


def test_force_norm_metric_by_name(cw, diffs):
    from queries.leaderboard import leaderboard_report
    from queries.metrics import get

    report = leaderboard_report(cw, datasets=[DATASET], models=["unep-v1"], metric="force_norm_rmse")
    row = report.table.iloc[0]
    norms = np.linalg.norm(np.concatenate(diffs["unep-v1"]["df"]), axis=1)
    assert row["force_norm_rmse"] == pytest.approx(1000 * np.sqrt(np.mean(norms**2)), rel=1e-9)
    assert row["force_norm_rmse"] == pytest.approx(np.sqrt(3) * row["force_rmse"], rel=1e-9)
    mae = leaderboard_report(cw, datasets=[DATASET], models=["unep-v1"], metric="force-norm-mae")
    assert mae.table.iloc[0]["force_norm_mae"] == pytest.approx(1000 * norms.mean(), rel=1e-9)
    assert get("force-norm-rmse").unit == "meV/Å"


# -- defect 6: energy offsets only in the leaderboard -------------------------------------------


def test_pareto_energy_offset_is_the_leaderboards(cw, diffs):
    from queries.pareto import pareto

    raw = pareto(cw, metric="energy-rmse", datasets=[DATASET], hardware=[CPU])
    df = pareto(cw, metric="energy-rmse", datasets=[DATASET], hardware=[CPU],
                energy_offset="per-element")
    expected = 1000 * np.sqrt(np.mean(shifted_energy_errors(diffs["eam-zhou"]) ** 2))
    got = df[df["model"] == "eam-zhou"]["error"]
    assert np.allclose(got, expected, rtol=1e-9)
    assert (raw[raw["model"] == "eam-zhou"]["error"] > 10 * expected).all()
    assert "per-element" in df.attrs["error_source"]


def test_parity_energy_offset_matches_the_leaderboard(cw, diffs):
    from queries.figures import parity_data

    data = parity_data(cw, model="eam-zhou", dataset=DATASET, quantity="energy",
                       energy_offset="per-element")
    rmse = 1000 * np.sqrt(np.mean((data["pred"] - data["ref"]) ** 2))
    assert rmse == pytest.approx(1000 * np.sqrt(np.mean(shifted_energy_errors(diffs["eam-zhou"]) ** 2)),
                                 rel=1e-9)
    assert len(data.attrs["shifts"]) == len(set(diffs["eam-zhou"]["element"]))


def test_uq_energy_offset_shifts_each_member(cw, diffs):
    """U_E and e_E after each member's own per-element shift, against numpy."""
    from queries.uq import uq_report

    members = ["eam-zhou", "unep-v1"]  # the ensemble's member order (by name)
    n = np.array(diffs["unep-v1"]["n"], float)
    shifted = np.stack([shifted_energy_errors(diffs[mo]) for mo in members], axis=1)  # eV/atom
    mean = shifted.mean(axis=1)
    u = np.abs(shifted - mean[:, None]).max(axis=1)
    e = np.abs(mean)  # (E_ref - <E'>)/N = -mean dE'
    table, data = uq_report(cw, datasets=[DATASET], ensemble="mixed", level=None,
                            energy_offset="per-element", n_boot=10)
    row = table[(table["quantity"] == "energy")].iloc[0]
    assert row["mean_e"] == pytest.approx(1000 * e.mean(), rel=1e-9)
    assert row["mean_u"] == pytest.approx(1000 * u.mean(), rel=1e-9)
    raw, _ = uq_report(cw, datasets=[DATASET], ensemble="mixed", n_boot=10)
    assert raw[raw["quantity"] == "energy"].iloc[0]["mean_u"] > 10 * row["mean_u"]
    assert "per-element" in (data.note or "")
    np.testing.assert_allclose(data.structures["e_energy"].to_numpy(), e, rtol=1e-9, atol=1e-12)
    assert len(n) == len(data.structures)


def test_uq_refuses_members_with_gaps_unless_common(cw):
    from ingest.ensembles import add_to_ensemble
    from queries.uq import uq_report

    add_to_ensemble(cw, "gappy", ["unep-v1", CROWNED])
    with pytest.raises(NoMatch, match="--common"):
        uq_report(cw, datasets=[DATASET], ensemble="gappy", n_boot=10)
    table, data = uq_report(cw, datasets=[DATASET], ensemble="gappy", n_boot=10, common=True,
                            level=None)
    assert (table[table["level"] == "structure"]["n"] == 2).all()
    assert "576 of 578 structures left out" in data.note


# -- defect 10: figures --------------------------------------------------------------------------


def _overlaps(texts) -> list[tuple[str, str]]:
    fig = texts[0].figure
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(r)) for t in texts]
    return [(a, b) for i, (a, ba) in enumerate(boxes) for b, bb in boxes[i + 1:] if ba.overlaps(bb)]


def test_pareto_figure_labels_units_and_axes(cw, tmp_path):
    from matplotlib.image import imread

    from queries.cost_figures import pareto_figure, plot_pareto
    from queries.pareto import pareto

    df = pareto(cw, metric="force-rmse", datasets=[DATASET], hardware=[CPU])
    fig, texts = pareto_figure(df)
    assert _overlaps(texts) == []
    assert CROWNED not in {t.get_text() for t in texts}  # not comparable: named, not drawn
    assert any(CROWNED in t.get_text() for t in fig.texts)
    for ax in fig.axes:
        if ax.get_visible():
            assert ax.get_yscale() == "linear"  # 48-99 meV/Å: no log axis needed
            assert ax.get_ylabel() == "Force RMSE (meV/Å)"
    png = plot_pareto(df, tmp_path / "front.png")
    h, w = imread(png).shape[:2]
    width_in, height_in = fig.get_size_inches()
    assert w >= 300 * width_in - 1 and h >= 300 * height_in - 1
    for suffix, magic in ((".pdf", b"%PDF"), (".svg", b"<?xml")):
        assert plot_pareto(df, tmp_path / f"front{suffix}").read_bytes().startswith(magic)


def test_crowded_labels_do_not_overprint():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from queries.cost_figures import place_labels

    rng = np.random.default_rng(3)
    x, y = 1 + rng.random(12) * 0.05, 50 + rng.random(12)  # twelve nearly coincident points
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    ax.scatter(x, y)
    ax.margins(0.5)
    texts = place_labels(ax, x, y, [f"model-{i}" for i in range(12)])
    assert _overlaps(texts) == []
    plt.close(fig)


def test_parity_inset_in_table_units_with_shift(cw, tmp_path):
    from matplotlib.image import imread

    from queries.figures import parity_data, parity_figure, plot_parity

    data = parity_data(cw, model="eam-zhou", dataset=DATASET, quantity="energy",
                       energy_offset="per-element")
    fig = parity_figure(data, quantity="energy")
    inset = "\n".join(t.get_text() for t in fig.axes[0].texts)
    assert "RMSE" in inset and "meV/atom" in inset and "per-element shift" in inset
    forces = parity_data(cw, model="unep-v1", dataset=DATASET, quantity="forces")
    inset = "\n".join(t.get_text() for t in parity_figure(forces, quantity="forces").axes[0].texts)
    assert "meV/Å" in inset and "578 of 578 structures" in inset
    h, w = imread(plot_parity(data, tmp_path / "p.png", quantity="energy")).shape[:2]
    assert (w, h) == (1260, 1200)  # 4.2 x 4.0 in at 300 dpi


# -- the same through the command line ---------------------------------------------------------


@pytest.fixture
def cmp_cli(loaded):
    from typer.testing import CliRunner

    from cli.app import app

    def run(*args):
        return CliRunner().invoke(app, ["--url", loaded[0], "--lake", loaded[1], *map(str, args)])

    return run


def test_cli_options_of_the_comparison_rule(cmp_cli, tmp_path):
    import json

    res = cmp_cli("leaderboard", "-d", DATASET, "-m", "unep-v1", "-m", CROWNED, "--common",
                  "--metric", "force_rmse")
    assert res.exit_code == 0, res.output
    assert "compared on the 2 of 578 structures" in res.output
    res = cmp_cli("pareto", "--metric", "energy-rmse", "-d", DATASET, "--hardware", CPU,
                  "--energy-offset", "per-element", "-f", "json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {"protocol", "timing_system", "n_predicted"} <= set(rows[0])
    assert "per-element energy shifts" in res.stderr
    res = cmp_cli("pareto", "-d", DATASET, "--hardware", CPU)
    assert res.exit_code == 0 and "error: Force RMSE (meV/Å) from the leaderboard" in res.output
    res = cmp_cli("pareto", "--hardware", CPU)
    assert res.exit_code == 1 and "--pool" in res.output and "Traceback" not in res.output
    res = cmp_cli("uq", "-e", "mixed", "-d", DATASET, "--energy-offset", "per-element",
                  "--n-boot", "10", "-f", "json")
    assert res.exit_code == 0, res.output
    for args in (("parity", "-m", "eam-zhou", "-d", DATASET, "--energy-offset", "per-element"),
                 ("pareto", "-d", DATASET, "--hardware", CPU, "--common"),
                 ("uq", "-e", "mixed", "-d", DATASET, "--energy-offset", "per-element",
                  "--level", "structure")):
        out = tmp_path / f"{args[0]}.pdf"
        res = cmp_cli("plot", *args, "--out", out)
        assert res.exit_code == 0, res.output
        assert out.read_bytes().startswith(b"%PDF")


def test_drift_figure_without_temperatures_draws_bars(tmp_path):
    """LAMMPS NVE logs state no temperature: the figure is one bar per run, not an empty plot."""
    from queries.md_figures import plot_drift

    df = pd.DataFrame({"model": ["ace-ta", "eam-cu"], "system": ["Ta", "Cu"],
                       "temperature_k": [np.nan, np.nan], "status": ["ok", "ok"],
                       "drift_max_mev_per_atom": [91.0, 0.69]})
    out = plot_drift(df, tmp_path / "drift.png")
    assert out.stat().st_size > 10_000
