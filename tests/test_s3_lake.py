"""The lake on S3-compatible object storage: a local S3 server (moto) on 127.0.0.1, both catalogs.

The lake is addressed as ``s3://bucket/prefix``, the endpoint and credentials come from the
standard AWS environment variables, as on a cluster. Ingest, evaluate, leaderboard, uq, md series,
``warehouse sql`` and ``check [--repair]`` all run against it.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

moto_server = pytest.importorskip("moto.server", reason="moto[server] (the test extra) is absent")
from pyarrow import fs as pafs  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_lake(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    pafs.S3FileSystem(endpoint_override=s3_endpoint, allow_bucket_creation=True).create_dir(bucket)
    return f"s3://{bucket}/warehouse"


@pytest.fixture
def s3cli(db_url: str, s3_lake: str):
    from typer.testing import CliRunner

    from cli.app import app

    runner = CliRunner()

    def run(*args: str):
        res = runner.invoke(app, ["--url", db_url, "--lake", s3_lake, *map(str, args)])
        assert res.exit_code == 0, (args, res.output)
        return res

    return run


def _bucket_files(lake: str) -> list[str]:
    s3, base = pafs.FileSystem.from_uri(lake)
    infos = s3.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    return [i.path for i in infos if i.type == pafs.FileType.File]


def _noisy_emt_predictions(path: Path) -> None:
    """EMT's labels on the bundled mlearn Cu test set plus noise: a second ensemble member."""
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from ase import Atoms

    from ingest.demo import demo_files
    from ingest.mlearn import parse_mlearn_json

    rng = np.random.default_rng(7)
    frames = []
    for f in parse_mlearn_json(demo_files()["mlearn-Cu-test"]):
        atoms = Atoms(numbers=f.numbers, positions=f.positions, cell=f.cell, pbc=f.pbc)
        atoms.calc = EMT()
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=e + rng.normal() * 0.01 * len(atoms),
                                           forces=f + rng.normal(size=f.shape) * 0.05)
        frames.append(atoms)
    write(path, frames, format="extxyz")


def test_the_whole_path_on_an_s3_lake(s3cli, s3_lake: str, tmp_path: Path) -> None:
    s3cli("demo")  # mlearn Cu and Ni ingested, EMT evaluated: positions, forces into the bucket
    files = _bucket_files(s3_lake)
    data = [f for f in files if not f.endswith("/_warehouse.json")]  # the lake's catalog marker
    assert data and all(f.endswith(".parquet") for f in data), files
    assert not any(f.endswith(".tmp") for f in files)

    board = json.loads(s3cli("leaderboard", "--model", "emt", "-f", "json").stdout)
    atoms = json.loads(s3cli("sql", "SELECT dataset, count(*) AS n_atoms, 1000 * sqrt(avg("
                             "(dfx*dfx + dfy*dfy + dfz*dfz) / 3)) AS force_rmse FROM atom_errors"
                             " GROUP BY dataset ORDER BY dataset", "-f", "json").stdout)
    assert [r["dataset"] for r in board] == [r["dataset"] for r in atoms]
    for b, a in zip(board, atoms, strict=True):
        assert a["n_atoms"] == b["n_atoms"]
        assert a["force_rmse"] == pytest.approx(b["force_rmse"], rel=1e-9)

    noisy = tmp_path / "emt_noisy.xyz"
    _noisy_emt_predictions(noisy)
    s3cli("ingest", "predictions", noisy, "--model", "emt-noisy")
    s3cli("ensemble", "add", "pair", "--member", "emt", "--member", "emt-noisy")
    uq = json.loads(s3cli("uq", "--ensemble", "pair", "--dataset", "mlearn-Cu-test", "-f", "json").stdout)
    assert uq, "uq read the members' forces from the bucket"

    thermo = tmp_path / "thermo.out"
    rows = np.column_stack([np.linspace(300, 310, 10), np.full(10, 1.0), np.linspace(-100, -99, 10),
                            *np.zeros((6, 10)), *np.full((3, 10), 10.0)])
    np.savetxt(thermo, rows)
    (tmp_path / "run.in").write_text("time_step 1\ndump_thermo 100\nrun 1000\n")
    s3cli("ingest", "md", thermo, "--model", "emt", "--system", "Cu", "--label", "s3")
    series = s3cli("md", "series", "thermo", "temperature", "-m", "emt", "-f", "csv").stdout
    assert series.count("temperature") == 10 and "310.0" in series

    assert "ok:" in s3cli("check").stdout


def test_check_repair_on_an_s3_lake(s3cli, s3_lake: str, db_url: str) -> None:
    from typer.testing import CliRunner

    from cli.app import app

    s3cli("demo")
    s3, base = pafs.FileSystem.from_uri(s3_lake)
    orphan = f"{base}/positions/run=999/part-999-orphan.parquet"
    with s3.open_output_stream(orphan) as out:
        out.write(b"not a parquet file")
    res = CliRunner().invoke(app, ["--url", db_url, "--lake", s3_lake, "check"])
    assert res.exit_code == 1 and "orphan" in res.output
    s3cli("check", "--repair")
    assert orphan not in _bucket_files(s3_lake)
    assert "ok:" in s3cli("check").stdout
