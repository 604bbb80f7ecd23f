"""Figures: each `warehouse plot` command of the leaderboard writes a non-empty file, and the
parity data read from the lake agree with the leaderboard's SQL aggregates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from queries.figures import parity_data, periodic_position
from queries.leaderboard import leaderboard
from unep_fixtures import DATASET, ingest_unep
from warehouse import open_warehouse


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, _pg, shared_data):
    """(url, lake) of one warehouse with PbTe and two UNEP-v1 sets, shared by this module."""
    from ingest.api import ingest_gpumd

    tmp = tmp_path_factory.mktemp("fig")
    url = _pg.new_url() if _pg is not None else f"sqlite:///{tmp / 'catalog.sqlite'}"
    with open_warehouse(url, str(tmp / "lake")) as wh:
        ingest_gpumd(wh, shared_data / "gpumd" / "nep_train_PbTe", model="pbte-nep", dataset="pbte")
        ingest_unep(wh, shared_data, models=("unep-v1", "eam-zhou"), sets=("eos", "screw"))
    return url, str(tmp / "lake")


@pytest.fixture
def filled(loaded):
    w = open_warehouse(*loaded)
    yield w
    w.close()


@pytest.fixture
def cli(loaded):
    from typer.testing import CliRunner

    from cli.app import app

    def run(*args):
        return CliRunner().invoke(app, ["--url", loaded[0], "--lake", loaded[1], *map(str, args)])

    return run


@pytest.mark.parametrize("args", [
    ("parity", "-m", "unep-v1", "-d", DATASET, "-q", "energy"),
    ("parity", "-m", "unep-v1", "-d", DATASET, "-q", "forces"),
    ("parity", "-m", "eam-zhou", "-d", DATASET, "-q", "stress"),
    ("elements", "-m", "eam-zhou", "--metric", "force_rmse"),
    ("components", "--metric", "energy_rmse"),
], ids=["parity-energy", "parity-forces", "parity-stress", "elements", "components"])
@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_plot_commands_write_a_figure(filled, cli, tmp_path: Path, args, suffix):
    out = tmp_path / f"fig.{suffix}"
    res = cli("plot", *args, "--out", out)
    assert res.exit_code == 0, res.output
    assert out.is_file() and out.stat().st_size > 5000
    head = out.read_bytes()[:8]
    assert head.startswith(b"\x89PNG") if suffix == "png" else b"<svg" in out.read_bytes()[:2000]


def test_parity_data_agrees_with_the_leaderboard(filled):
    row = leaderboard(filled, datasets=[DATASET], models=["unep-v1"]).iloc[0]
    for quantity, column, scale in (("forces", "force_rmse", 1000), ("energy", "energy_rmse", 1000),
                                    ("stress", "stress_rmse", 1)):
        d = parity_data(filled, model="unep-v1", dataset=DATASET, quantity=quantity)
        rmse = scale * np.sqrt(np.mean((d["pred"] - d["ref"]) ** 2))
        assert rmse == pytest.approx(row[column], rel=1e-9), quantity


def test_periodic_positions():
    assert periodic_position(1) == (0, 0) and periodic_position(2) == (0, 17)
    assert periodic_position(13) == (2, 12)  # Al
    assert periodic_position(26) == (3, 7)  # Fe
    assert periodic_position(79) == (5, 10)  # Au
    assert periodic_position(72) == (5, 3)  # Hf
    assert periodic_position(57) == (8, 2)  # La, first of the lanthanide row
    assert len({periodic_position(z) for z in range(1, 119)}) == 118


def test_plot_unknown_model_is_a_clean_error(filled, cli, tmp_path: Path):
    res = cli("plot", "parity", "-m", "nope", "-d", DATASET, "--out", tmp_path / "x.png")
    assert res.exit_code == 1 and "no model named 'nope'" in res.output
    assert not (tmp_path / "x.png").exists()


def test_parity_without_labels_is_a_clean_error(filled, cli, tmp_path: Path):
    res = cli("plot", "parity", "-m", "pbte-nep", "-d", "pbte", "-q", "stress", "--out", tmp_path / "x.png")
    assert res.exit_code == 1 and "no stress with both a reference label" in res.output
