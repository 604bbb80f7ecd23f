"""Bad input, interruption and provenance: an ingest lands whole or not at all.

Every failure must leave the catalog and the lake exactly as they were (row counts of every table
but ``ingest_runs``, which records the failed attempt on purpose, and the list of lake files).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ingest_helpers import snapshot, write_fcc_xyz

GOOD = (
    '2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3 energy=-3.5'
    ' pbc="T T T"\nCu 0 0 0 0.1 0 0\nCu 2 2 0 -0.1 0 0\n'
)
SHIFTED = GOOD.replace("Cu 2 2 0", "Cu 2 2 1")  # another structure, so frame 0 is new too

# name -> (file content, the place the one-line error must name)
BAD_XYZ: dict[str, tuple[bytes, str]] = {
    "truncated-frame": ((SHIFTED + GOOD.rsplit("\n", 2)[0] + "\n").encode(), "frame 1"),
    "wrong-array-length": ((SHIFTED + GOOD.replace("forces:R:3", "forces:R:2")).encode(), "frame 1"),
    "nan-forces": ((SHIFTED + GOOD.replace("0.1 0 0\n", "nan 0 0\n")).encode(), "frame 1"),
    "inf-energy": ((SHIFTED + GOOD.replace("energy=-3.5", "energy=inf")).encode(), "frame 1"),
    "periodic-without-cell": (
        (SHIFTED + '1\nProperties=species:S:1:pos:R:3 energy=-1 pbc="T T T"\nCu 0 0 0\n').encode(),
        "frame 1",
    ),
    "unknown-property-type": ((SHIFTED + GOOD.replace("forces:R:3", "forces:Q:3")).encode(), "frame 1"),
    "non-numeric-energy": ((SHIFTED + GOOD.replace("energy=-3.5", "energy=abc")).encode(), "frame 1"),
    "unknown-element": ((SHIFTED + GOOD.replace("Cu 0 0 0", "Qq 0 0 0")).encode(), "frame 1"),
    "bad-atom-count": ((SHIFTED + "two\nx\n").encode(), "frame 1"),
    "empty": (b"", "empty"),
    "whitespace-only": (b"\n\n   \n", "no frames"),
    "binary-garbage": (np.random.default_rng(1).bytes(4096), "line"),
    "pathologically-long-line": ((SHIFTED + "1\n" + "x" * 2_000_000 + "\nCu 0 0 0\n").encode(), "line 6"),
}


def _assert_refused(res, path: Path, where: str) -> None:
    assert res.exit_code != 0, res.output
    message = res.output.strip()
    assert "Traceback" not in message
    assert message.startswith("Error: ") and "\n" not in message, message
    assert str(path) in message and where in message, message


@pytest.fixture
def seeded(cli, wh, tmp_path: Path):
    """A warehouse that already holds something, so "unchanged" is a real check."""
    path = tmp_path / "seed.xyz"
    write_fcc_xyz(path, 3, reps=2)
    res = cli("ingest", "structures", path, "--dataset", "seed")
    assert res.exit_code == 0, res.output
    return snapshot(wh)


@pytest.mark.parametrize("case", list(BAD_XYZ), ids=list(BAD_XYZ))
def test_bad_extxyz_is_refused_and_nothing_is_written(case, cli, wh, tmp_path, seeded) -> None:
    content, where = BAD_XYZ[case]
    path = tmp_path / f"{case}.xyz"
    path.write_bytes(content)
    res = cli("ingest", "structures", path, "--dataset", "bad")
    _assert_refused(res, path, where)
    assert snapshot(wh) == seeded


@pytest.mark.parametrize("reader", ["c", "ase"])
def test_both_readers_refuse_the_same_bad_files(reader, tmp_path) -> None:
    """The C parser falls back to ASE where it cannot go on, so errors come out the same."""
    from ingest.extxyz import parse_extxyz
    from warehouse.errors import IngestError

    for case in ("truncated-frame", "wrong-array-length", "nan-forces", "unknown-property-type"):
        path = tmp_path / f"{case}.xyz"
        path.write_bytes(BAD_XYZ[case][0])
        with pytest.raises(IngestError, match="frame 1"):
            list(parse_extxyz(path, reader=reader))


def test_bad_mlearn_json_is_refused(cli, wh, tmp_path, seeded) -> None:
    for name, text, where in [
        ("not-json.json", "[{", "not valid JSON"),
        ("no-structure.json", '[{"outputs": {}}]', "record 0"),
        ("bad-lattice.json", '[{"structure": {"lattice": {}, "sites": []}}]', "record 0"),
    ]:
        path = tmp_path / name
        path.write_text(text)
        res = cli("ingest", "structures", path, "--dataset", "bad")
        _assert_refused(res, path, where)
    assert snapshot(wh) == seeded


def test_failure_mid_file_rolls_back_earlier_batches(cli, wh, tmp_path, seeded, monkeypatch) -> None:
    """A bad frame after several written batches: their rows and lake files are all undone."""
    import ingest.loader

    monkeypatch.setattr(ingest.loader, "BATCH_ATOMS", 64)  # many small batches before the bad one
    path = tmp_path / "late.xyz"
    write_fcc_xyz(path, 20, reps=2, seed=5)
    with open(path, "a") as fh:
        fh.write(GOOD.replace("0.1 0 0\n", "nan 0 0\n"))
    res = cli("ingest", "structures", path, "--dataset", "late")
    _assert_refused(res, path, "frame 20")
    assert snapshot(wh) == seeded
    runs = json.loads(cli("runs", "-f", "json").output)
    assert runs[0]["status"] == "failed" and "frame 20" in runs[0]["message"]


def test_runs_lists_provenance(cli, wh, tmp_path, seeded) -> None:
    path = tmp_path / "ok.xyz"
    write_fcc_xyz(path, 2, reps=2, seed=9)
    assert cli("ingest", "structures", path, "--dataset", "prov").exit_code == 0
    bad = tmp_path / "bad.xyz"
    bad.write_bytes(BAD_XYZ["nan-forces"][0])
    assert cli("ingest", "structures", bad, "--dataset", "prov").exit_code != 0
    res = cli("runs", "--format", "json")
    assert res.exit_code == 0, res.output
    runs = json.loads(res.output)
    failed, ok = runs[0], runs[1]
    assert ok["status"] == "ok" and ok["kind"] == "structures"
    assert ok["source"] == str(path)
    assert ok["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert "2 structures" in ok["added"] and ok["refused"] == 0
    assert ok["user"] and ok["host"] and ok["started"] and ok["finished"] and ok["seconds"] >= 0
    assert "ase=" in ok["libraries"] and ok["warehouse"]
    assert ok["argv"]  # sys.argv of the process (pytest here)
    assert failed["status"] == "failed" and "frame 1" in failed["message"]
    assert failed["sha256"] == hashlib.sha256(bad.read_bytes()).hexdigest()
    assert [r["status"] for r in json.loads(cli("runs", "--status", "failed", "-f", "json").output)] == ["failed"]
    for fmt in ("table", "md", "csv"):
        res = cli("runs", "--format", fmt)
        assert res.exit_code == 0 and "structures" in res.output, res.output


# -- interruption: a real process, killed mid-way ------------------------------------------------

def _warehouse_cmd(db_url: str, lake: Path, *args: object) -> list[str]:
    return [sys.executable, "-c", "from cli.app import main; main()", "--url", db_url,
            "--lake", str(lake), *map(str, args)]


def _start_and_kill(cmd: list[str], lake: Path, sig: int) -> subprocess.Popen:
    """Start an ingest, wait until it has written a lake file (it is mid-way), then signal it."""
    before = set(lake.rglob("*.parquet")) if lake.exists() else set()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the ingest ended before it could be interrupted: {proc.communicate()}")
        if lake.exists() and set(lake.rglob("*.parquet")) - before:
            break
        time.sleep(0.005)
    proc.send_signal(sig)
    proc.wait(timeout=120)
    return proc


@pytest.fixture(scope="module")
def big_xyz(tmp_path_factory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("big") / "big.xyz"
    n_atoms = write_fcc_xyz(path, 2500, reps=4, seed=3)  # 2,500 x 256 atoms = 640k atoms
    return path, n_atoms


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_catalog_unchanged_and_retry_succeeds(
    cli, wh, db_url, lake_path, seeded, big_xyz
) -> None:
    path, _ = big_xyz
    runs_before = wh.counts()["ingest_runs"]
    proc = _start_and_kill(_warehouse_cmd(db_url, lake_path, "ingest", "structures", path,
                                          "--dataset", "big"), lake_path, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    counts, files = snapshot(wh)
    assert counts == seeded[0]  # the catalog is exactly as before
    # the run was registered before it wrote: its row stays "running" until a repair finds its
    # process gone
    assert wh.counts()["ingest_runs"] == runs_before + 1
    orphans = sorted(set(files) - set(seeded[1]))
    assert orphans, "the kill came after a lake file was written, so it must be left behind"

    res = cli("check")
    assert res.exit_code == 1
    problems = [line for line in res.output.splitlines() if line.split()[0].isupper()]
    assert problems and all(line.startswith("ORPHAN") for line in problems), res.output
    res = cli("check", "--repair")
    assert res.exit_code == 0 and "marked failed" in res.output, res.output
    assert snapshot(wh) == seeded
    assert cli("check").exit_code == 0
    runs = json.loads(cli("runs", "-f", "json").output)
    assert runs[0]["status"] == "failed" and "killed" in runs[0]["message"]

    res = cli("ingest", "structures", path, "--dataset", "big")
    assert res.exit_code == 0, res.output
    assert "added" in res.output and "2500 structures" in res.output


@pytest.mark.slow
def test_sigterm_mid_ingest_rolls_back_cleanly(cli, wh, db_url, lake_path, seeded, big_xyz) -> None:
    path, _ = big_xyz
    proc = _start_and_kill(_warehouse_cmd(db_url, lake_path, "ingest", "structures", path,
                                          "--dataset", "big"), lake_path, signal.SIGTERM)
    _, err = proc.communicate()
    assert proc.returncode == 143, err
    assert "Interrupted" in err and "Traceback" not in err
    assert snapshot(wh) == seeded  # no orphans either: the rollback removed its lake files
    runs = json.loads(cli("runs", "-f", "json").output)
    assert runs[0]["status"] == "failed" and "signal" in runs[0]["message"]
    assert cli("check").exit_code == 0
