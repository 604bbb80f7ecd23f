"""The head start of `warehouse ingest structures`: its file's reader starts before the command
line is parsed (cli.early), and only when the guess is certain; otherwise nothing changes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from ingest_helpers import write_fcc_xyz

from cli import early

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork: Linux only")


S, P = "structures", "predictions"


@pytest.mark.parametrize(("args", "expected"), [
    (["ingest", S, "a.xyz", "--dataset", "d"], (S, "a.xyz", None)),
    (["--url", "sqlite:///c", "--lake=l", "ingest", S, "-d", "d", "a.xyz"], (S, "a.xyz", None)),
    (["ingest", S, "a.xyz", "-d", "d", "-l", "PBE", "--subset", "s", "--split", "train",
      "--format", "extxyz", "--trust-pickle"], (S, "a.xyz", "extxyz")),
    (["ingest", S, "--format=vasp", "--", "-odd.xyz"], (S, "-odd.xyz", "vasp")),
    (["ingest", P, "a.xyz", "-m", "x"], (P, "a.xyz", None)),
    (["ingest", P, "a.xyz", "--model=x", "--parameters", "nep.txt", "--parameters", "b",
      "--version", "2", "--force"], (P, "a.xyz", None)),
], ids=["plain", "root-options", "every-option", "double-dash", "predictions",
        "predictions-every-option"])
def test_the_file_of_an_ingest_is_recognised(args, expected) -> None:
    assert early.guess(args) == expected


@pytest.mark.parametrize("args", [
    [], ["--help"], ["ingest", S, "--help"], ["ingest", S, "a.xyz", "-h"],
    ["--verbose", "ingest", S, "a.xyz"], ["ingest", S, "a.xyz", "b.xyz"],
    ["ingest", S, "a.xyz", "--dataset"], ["ingest", S, "--new-option", "v", "a.xyz"],
    ["ingest", S, "-d", "x"], ["--url"], ["ingest"], ["ingest", "timings", "a.log"],
    # options that change what the reader reads: its keys
    ["ingest", P, "a.xyz", "-m", "x", "--forces-key", "f"],
    ["ingest", P, "a.xyz", "-m", "x", "--voigt-order", "xx,yy,zz,yz,xz,xy"],
    ["ingest", P, "a.xyz", "-m", "x", "--dataset", "d"],  # not an option of predictions
], ids=repr)
def test_anything_else_is_left_to_the_command_line_parser(args) -> None:
    assert early.guess(args) is None


@linux_only
def test_the_command_takes_the_early_reader_only_for_its_own_file(tmp_path) -> None:
    a, b = tmp_path / "a.xyz", tmp_path / "b.xyz"
    write_fcc_xyz(a, 2, reps=2)
    write_fcc_xyz(b, 3, reps=2)
    early.start(["ingest", "structures", str(a), "-d", "x"])
    reader = early.take(tmp_path / "." / "a.xyz", None)  # the same file, spelt differently
    assert reader is not None and reader.path == str(a)
    assert sum(len(batch) for batch in reader) == 2
    reader.close()

    early.start(["ingest", "structures", str(a), "-d", "x"])
    stale = early._started["reader"]
    assert early.take(b, None) is None  # another file: the guess is closed, not reused
    assert stale._stream._child is None
    early.start(["ingest", "structures", str(a), "-d", "x"])
    assert early.take(a, "vasp") is None  # read as another format: not this reader
    assert early.take(a, None) is None  # taken once at most
    early.start(["ingest", "structures", str(a), "-d", "x"])
    assert early.take(a, None, "predictions") is None  # read with other label keys


@linux_only
def test_an_early_predictions_reader_reads_the_predicted_labels(tmp_path, wh) -> None:
    """The head start of `ingest predictions` reads the *_pred keys first, as the command's own
    reader does: the stored predictions are the same either way."""
    from ase.io import read, write

    from ingest.api import ingest_predictions, ingest_structures

    ref = tmp_path / "ref.xyz"
    write_fcc_xyz(ref, 3, reps=2)
    frames = read(ref, ":")
    for a in frames:  # the reference labels stay in the file; the prediction is forces_pred
        a.arrays["forces_pred"] = a.get_forces() + 0.1
    pred = tmp_path / "pred.xyz"
    write(pred, frames, format="extxyz")
    ingest_structures(wh, ref, dataset="d", level_of_theory="EMT")
    early.start(["ingest", "predictions", str(pred), "-m", "early"])
    ingest_predictions(wh, pred, model="early", reader=early.take(pred, None, "predictions"))
    ingest_predictions(wh, pred, model="late")
    with wh.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT m.name, e.force_abs_sum FROM prediction_errors e JOIN predictions p"
            " ON p.id = e.prediction_id JOIN models m ON m.id = p.model_id ORDER BY p.structure_id, m.name"
        ).all()
    assert len(rows) == 6
    for (_, early_sum), (_, late_sum) in zip(rows[0::2], rows[1::2], strict=True):
        assert early_sum == pytest.approx(late_sum) and early_sum > 0


def test_no_reader_for_other_formats_or_missing_files(tmp_path) -> None:
    (tmp_path / "x.json").write_text("[]")
    for args in (["ingest", "structures", str(tmp_path / "x.json"), "-d", "x"],
                 ["ingest", "structures", str(tmp_path / "missing.xyz"), "-d", "x"]):
        early.start(args)
        assert "reader" not in early._started


@linux_only
def test_a_refused_command_line_leaves_no_reader_process(tmp_path) -> None:
    """The guess starts a reader, typer then refuses the command line: the process exits with
    the usage error and its reader process does not outlive it."""
    path = tmp_path / "a.xyz"
    write_fcc_xyz(path, 2, reps=2)
    probe = (
        "import sys\nfrom cli.app import main\n"
        f"sys.argv = ['warehouse', '--url', 'sqlite:///{tmp_path / 'c.sqlite'}', 'ingest',"
        f" 'structures', {str(path)!r}]\n"  # --dataset is required: a usage error
        "import cli.early as e\n"
        "try:\n    main()\nexcept SystemExit as exc:\n"
        "    print('exit', exc.code, e._started['reader']._stream._child.pid)\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "Missing option '--dataset'" in res.stderr
    word, code, pid = res.stdout.split()
    assert (word, code, res.returncode) == ("exit", "2", 0)
    deadline = time.monotonic() + 10
    while _alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return not any(line.startswith("State:") and "Z" in line for line in fh)
    except FileNotFoundError:
        return False


def _console(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from cli.early import console; console()", *args],
                          capture_output=True, text=True, timeout=120)


def test_the_console_script_ends_an_ingest_at_once_with_everything_closed(tmp_path) -> None:
    """After `ingest structures` the console script skips the interpreter's teardown: its
    output is all there, its exit code is the command's, and the catalog was closed first
    (SQLite removes its write-ahead log when the last connection closes)."""
    good, bad = tmp_path / "a.xyz", tmp_path / "bad.xyz"
    write_fcc_xyz(good, 3, reps=2)
    bad.write_text("2\nLattice=\"3 0 0 0 3 0 0 0 3\" Properties=species:S:1:pos:R:3\nCu 0 0 0\n")
    where = ["--url", f"sqlite:///{tmp_path / 'c.sqlite'}", "--lake", str(tmp_path / "lake")]
    res = _console(*where, "ingest", "structures", str(good), "-d", "x")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("structures (run 1): added") and "3 structures" in res.stdout
    assert not (tmp_path / "c.sqlite-wal").exists()
    res = _console(*where, "ingest", "structures", str(bad), "-d", "x")
    assert res.returncode != 0 and str(bad) in res.stderr and res.stderr.startswith("Error: ")
    res = _console(*where, "runs")  # another command: the normal way out
    assert res.returncode == 0 and "failed" in res.stdout and "ok" in res.stdout


@linux_only
def test_the_reader_starts_before_the_catalog_machinery_is_imported(tmp_path) -> None:
    """What a reader process inherits is all that runs before it starts: no SQLAlchemy, and not
    importlib.metadata (the package version is read when provenance needs it)."""
    path = tmp_path / "a.xyz"
    write_fcc_xyz(path, n_frames=2)
    code = (
        "import sys\nfrom pathlib import Path\nfrom cli import early\n"
        f"reader = early.start_reader(Path({str(path)!r}), None)\n"
        "print(sorted(m for m in ('sqlalchemy', 'importlib.metadata', 'pyarrow', 'pandas')"
        " if m in sys.modules))\n"
        "reader.close()\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]", res.stdout + res.stderr
