"""Hostile and malformed extended XYZ: every case once stored wrong is refused, the C parser is
never handed what crashes it, work is bounded by the bytes present, and the grammar's key-value
forms read as ASE reads them (or are refused clearly). See docs/INPUT.md."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ingest.extxyz import parse_extxyz_batches
from warehouse.errors import IngestError

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # none may leak to a user
ROOT = Path(__file__).resolve().parent.parent
LATTICE = 'Lattice="4 0 0 0 4 0 0 0 4"'
PROPS = "Properties=species:S:1:pos:R:3:forces:R:3"
ATOMS = ["Cu 0.0 0.0 0.0 0.1 0.2 0.3", "Ni 2.0 2.0 0.0 -0.1 -0.2 -0.3"]
STRESS9 = 'stress="0.01 0.002 0.003 0.002 0.02 0.004 0.003 0.004 0.03"'


def _frame(header: str, atoms: list[str] = ATOMS, count: str | None = None) -> str:
    return f"{count if count is not None else len(atoms)}\n{header}\n" + "\n".join(atoms) + "\n"


def _write(tmp_path: Path, text: str, name: str = "f.xyz") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _read(path: Path, reader: str) -> list:
    return [f for b in parse_extxyz_batches(path, reader=reader) for f in b.frames()]


READERS = ["auto", "ase"]  # auto: the C parser (ASE where it cannot go on); ase: ASE only


def _refused(tmp_path: Path, text: str, reader: str, *needles: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(IngestError) as info:
        _read(path, reader)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "frame 0" in message, message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


# --- the silently-wrong cases of the issue, each refused by both readers -------------------------

SILENTLY_WRONG = {
    "no-pos": (_frame(f"{LATTICE} Properties=species:S:1:forces:R:3 energy=-1",
                      ["Cu 0.1 0.2 0.3", "Ni 0.3 0.2 0.1"]), "pos"),
    "extra-column": (_frame(f"{LATTICE} {PROPS} energy=-1",
                            [ATOMS[0] + " 9.9", ATOMS[1]]), "fields"),
    "duplicate-energy": (_frame(f"{LATTICE} {PROPS} energy=-1 energy=-5"), "twice"),
    "duplicate-any-case": (_frame(f"{LATTICE} {PROPS} energy=-1 Energy=-5"), "twice"),
    "stress-1e999-upper": (_frame(f'{LATTICE} {PROPS} energy=-1 stress="0.01 1e999 0.003 0.002 0.02'
                                  ' 0.004 0.003 0.004 0.03"'), "stress"),
    "pbc-two": (_frame(f'{LATTICE} {PROPS} energy=-1 pbc="T T"'), "pbc"),
    "pbc-words": (_frame(f'{LATTICE} {PROPS} energy=-1 pbc="X Y Z"'), "pbc"),
    "lattice-1e300": (_frame(f'Lattice="1e300 0 0 0 4 0 0 0 4" {PROPS} energy=-1'), "Lattice"),
    "position-1e300": (_frame(f"{LATTICE} {PROPS} energy=-1",
                              ["Cu 1e300 0.0 0.0 0.1 0.2 0.3", ATOMS[1]]), "coordinate"),
    "count-wraps-2^32": (_frame(f"{LATTICE} {PROPS} energy=-1", count=str(2**32 + 2)), "4294967298"),
    "energy-T": (_frame(f"{LATTICE} {PROPS} energy=T"), "energy"),
    "energy-False": (_frame(f"{LATTICE} {PROPS} energy=False"), "energy"),
    "energy-flag": (_frame(f"{LATTICE} {PROPS} energy"), "energy"),
    "energy-word": (_frame(f"{LATTICE} {PROPS} energy=low"), "energy"),
    "plain-comment-with-energy": (_frame("relaxed energy of the cell", ["Cu 0 0 0", "Ni 1 1 1"]),
                                  "energy"),
    "stress-six": (_frame(f'{LATTICE} {PROPS} energy=-1 stress="1 2 3 4 5 6"'), "--voigt-order"),
    "virial-six": (_frame(f'{LATTICE} {PROPS} energy=-1 virial="1 2 3 4 5 6"'), "--voigt-order"),
    "stress-asymmetric": (_frame(f'{LATTICE} {PROPS} energy=-1 stress="1 2 3 4 5 6 7 8 9"'),
                          "symmetric"),
    "force-beyond-bound": (_frame(f"{LATTICE} {PROPS} energy=-1",
                                  ["Cu 0 0 0 2e4 0 0", ATOMS[1]]), "force"),
    "lattice-2d": (_frame(f"Lattice=[[4, 0, 0], [0, 4, 0], [0, 0, 4]] {PROPS} energy=-1"), "Lattice"),
}
BAD_LATTICE_WORDS = ["x", "½", "１.０", "--1.0", "1.0.0", "0x1p3", "nan", "inf", "1,5"]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", sorted(SILENTLY_WRONG))
def test_silently_wrong_cases_are_refused(case, reader, tmp_path) -> None:
    text, needle = SILENTLY_WRONG[case]
    _refused(tmp_path, text, reader, needle)


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("lattice", [*(f"4 0 0 0 4 0 0 0 {w}" for w in BAD_LATTICE_WORDS),
                                     "4 0 0 0 4 0 0 0", "4 0 0 0 4 0 0 0 4 0", "4 4 4"])
def test_a_malformed_lattice_is_refused_not_a_traceback(lattice, reader, tmp_path) -> None:
    _refused(tmp_path, _frame(f'Lattice="{lattice}" {PROPS} energy=-1'), reader, "Lattice")


def test_the_plain_frame_of_these_cases_reads(tmp_path) -> None:
    """The control: the same frame without the defect is read, identically by both readers."""
    path = _write(tmp_path, _frame(f"{LATTICE} {PROPS} energy=-1 {STRESS9} pbc=\"T T T\""))
    (c,), (a,) = _read(path, "auto"), _read(path, "ase")
    for f in (c, a):
        assert f.labels.energy == -1.0 and f.n_atoms == 2
        np.testing.assert_allclose(f.cell, np.eye(3) * 4)
    np.testing.assert_array_equal(c.labels.stress, a.labels.stress)


def test_six_numbers_read_in_the_order_given(tmp_path) -> None:
    """--voigt-order: GPUMD's order xx yy zz xy yz zx gives the same stress as the 3x3."""
    from dataclasses import replace

    from ingest.labels import DEFAULT_KEYS, parse_voigt_order

    xx, yy, zz, yz, xz, xy = 1.0, 2.0, 3.0, 0.4, 0.5, 0.6
    nine = _write(tmp_path, _frame(f'{LATTICE} {PROPS} energy=-1 virial="{xx} {xy} {xz} {xy} {yy}'
                                   f' {yz} {xz} {yz} {zz}"'), "nine.xyz")
    six = _write(tmp_path, _frame(f'{LATTICE} {PROPS} energy=-1 virial="{xx} {yy} {zz} {xy} {yz}'
                                  f' {xz}"'), "six.xyz")
    keys = replace(DEFAULT_KEYS, voigt_order=parse_voigt_order("xx,yy,zz,xy,yz,zx"))
    expected = [f.labels.stress for f in _read(nine, "auto")]
    for reader in READERS:
        got = [f.labels.stress for b in parse_extxyz_batches(six, reader=reader, keys=keys)
               for f in b.frames()]
        np.testing.assert_allclose(got, expected, rtol=1e-14)
    with pytest.raises(ValueError, match="once each"):
        parse_voigt_order("xx,yy,zz,xy,xy,zx")


def test_voigt_order_on_the_command_line(cli, wh, tmp_path) -> None:
    path = _write(tmp_path, _frame(f'{LATTICE} {PROPS} energy=-1 stress="1 2 3 0.4 0.5 0.6"'))
    res = cli("ingest", "structures", path, "-d", "six")
    assert res.exit_code == 1 and "--voigt-order" in res.output
    res = cli("ingest", "structures", path, "-d", "six", "--voigt-order", "xx,yy,zz,yz,xz,xy")
    assert res.exit_code == 0, res.output
    res = cli("ingest", "structures", path, "-d", "six", "--voigt-order", "xx,yy")
    assert res.exit_code == 1 and res.output.startswith("Error: ") and "once each" in res.output


# --- the C parser is never handed what crashes it ---------------------------------------------

CRASHERS = {"1e9-atoms": "1000000000", "2^31-1-atoms": str(2**31 - 1), "zero-atoms": "0",
            "2^31-atoms": str(2**31), "column-count-2^31": None, "column-count-behind-a-decoy": None}


def _crasher(name: str) -> str:
    if name == "column-count-2^31":
        return _frame(f"{LATTICE} Properties=species:S:1:pos:R:3:forces:R:2147483647 energy=-1")
    if name == "column-count-behind-a-decoy":  # a harmless Properties= inside another key's name
        return _frame(f"{LATTICE} xProperties=species:S:1:pos:R:3 energy=-1 "
                      "Properties=species:S:1:pos:R:3:forces:R:2147483647")
    return _frame(f"{LATTICE} {PROPS} energy=-1", count=CRASHERS[name])


@pytest.mark.parametrize("name", sorted(CRASHERS))
def test_headers_that_crash_the_c_parser_are_refused_in_process(name, tmp_path) -> None:
    """In this very process: a segfault here would end the test run."""
    for reader in ("auto", "c"):
        with pytest.raises(IngestError):
            _read(_write(tmp_path, _crasher(name)), reader)


def _warehouse(db_url: str, lake: Path, *args: object, env: dict | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from cli.app import main; main()", "--url", db_url, "--lake",
         str(lake), *map(str, args)], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    text = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 1, (proc.returncode, text)  # 139 was a segfault
    assert text.startswith("Error: ") and "\n" not in text, text
    for needle in needles:
        assert needle in text, (needle, text)


@pytest.mark.parametrize("how", ["structures-inline", "structures-thread", "predictions", "grades"])
def test_no_path_lets_a_crasher_reach_the_c_parser(how, db_url, lake_path, wh, tmp_path) -> None:
    path = _write(tmp_path, _crasher("1e9-atoms"))
    if how.startswith("structures"):
        proc = _warehouse(db_url, lake_path, "ingest", "structures", path, "-d", "x",
                          env={"WAREHOUSE_READ_AHEAD": how.split("-")[1]})
    elif how == "predictions":
        proc = _warehouse(db_url, lake_path, "ingest", "predictions", path, "-m", "m")
    else:
        proc = _warehouse(db_url, lake_path, "ingest", "grades", path, "-m", "m", "-k", "gamma")
    _one_line_error(proc, str(path), "frame 0")


# --- bounded work ---------------------------------------------------------------------------

def test_grades_on_a_tiny_file_claiming_ten_million_atoms_ends_at_once(db_url, lake_path, wh,
                                                                       tmp_path) -> None:
    """Once 15 s (a loop over the claimed count); the timeout is a hang guard, not a timing."""
    path = _write(tmp_path, _frame(f"{LATTICE} {PROPS} energy=-1", count="10000000"))
    assert path.stat().st_size < 200
    _one_line_error(_warehouse(db_url, lake_path, "ingest", "grades", path, "-m", "m", "-k", "g",
                               timeout=60), "truncated")


def test_a_file_of_blank_lines_has_no_frames(tmp_path) -> None:
    path = tmp_path / "blank.xyz"
    with path.open("wb") as fh:
        for _ in range(20):
            fh.write(b"\n" * (1 << 20))
    for reader in READERS:
        with pytest.raises(IngestError, match="no frames"):
            _read(path, reader)
    gz = tmp_path / "blank.xyz.gz"
    gz.write_bytes(gzip.compress(b"\n" * (1 << 20)))
    with pytest.raises(IngestError, match="no frames"):
        _read(gz, "auto")


def test_blank_lines_between_frames_are_skipped_by_both_readers(tmp_path) -> None:
    one = _frame(f"{LATTICE} {PROPS} energy=-1")
    path = _write(tmp_path, "\n\n" + one + "\n" * 5000 + one + "\n")
    assert len(_read(path, "auto")) == len(_read(path, "ase")) == 2


def test_a_compressed_file_that_expands_too_far_is_refused(tmp_path) -> None:
    from ingest.extxyz import MIN_EXPANDED_BYTES, scan_file

    path = tmp_path / "bomb.xyz.gz"
    with gzip.open(path, "wb", compresslevel=1) as fh:
        block = b"\n" * (1 << 22)
        for _ in range(MIN_EXPANDED_BYTES // len(block) + 2):
            fh.write(block)
    for check in (lambda: _read(path, "auto"), lambda: scan_file(path)):
        with pytest.raises(IngestError, match="decompression bomb"):
            check()


# --- the extended XYZ grammar's key-value forms: as ASE reads them, or refused ------------------

GRAMMAR = [
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3',
    "Lattice={4 0 0 0 4 0 0 0 4} Properties=species:S:1:pos:R:3",
    "Lattice=[4, 0, 0, 0, 4, 0, 0, 0, 4] Properties=species:S:1:pos:R:3",
    'Lattice="4.1 0.1 0 0.2 3.9 0 0 0.3 4.2" Properties=species:S:1:pos:R:3',
    'Lattice = "4 0 0 0 4 0 0 0 4" Properties = species:S:1:pos:R:3',
    '"Lattice"="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 pbc="T T F"',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 pbc=[T, T, F]',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 pbc={T F T}',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 pbc="True True False"',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 energy=-1.5',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 energy=-15e-1',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 energy=-2',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 energy="-1.5"',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 config_type=bulk',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 config_type="bulk fcc"',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 note="say \\"hi\\""',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 flag',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 tags={1 2 3}',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 tags=[1, 2, 3]',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 m=[[1, 2], [3, 4]]',
    f'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 {STRESS9}',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 stress={0.01 0.002 0.003 0.002'
    ' 0.02 0.004 0.003 0.004 0.03}',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 weight=2.5',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3 stress=[[0.01, 0.002, 0.003],'
    ' [0.002, 0.02, 0.004], [0.003, 0.004, 0.03]]',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:tag:I:1',
    'Lattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:fixed:L:1',
    "Properties=species:S:1:pos:R:3",
    'pbc="F F F" Properties=species:S:1:pos:R:3 energy=-1',
    "just a plain comment",
    "",
]


def _atoms_for(comment: str) -> list[str]:
    extra = " 7" if ":tag:I:1" in comment else " T" if ":fixed:L:1" in comment else ""
    return [f"Cu 0.0 0.0 0.0{extra}", f"Ni 2.0 2.0 1.0{extra}"]


def _ase(text: str):
    import ase.io

    try:
        return ase.io.read(io.StringIO(text), format="extxyz")
    except Exception:  # noqa: BLE001 - ASE refuses it
        return None


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("comment", GRAMMAR, ids=range(len(GRAMMAR)))
def test_grammar_cases_read_as_ase_reads_them_or_are_refused(comment, reader, tmp_path) -> None:
    text = _frame(comment, _atoms_for(comment))
    ours: list | str
    try:
        ours = _read(_write(tmp_path, text), reader)
    except IngestError as exc:
        ours = str(exc)
        assert "\n" not in ours
    atoms = _ase(text)
    if isinstance(ours, str):
        return  # refused clearly (the reasons are docs/INPUT.md's)
    if atoms is None and "stress=[[" in comment:  # the 2-D form ASE refuses: as the 9-number one
        atoms = _ase(text.replace(comment, f'{LATTICE} Properties=species:S:1:pos:R:3 {STRESS9}'))
    assert atoms is not None, f"read what ASE refuses: {comment}"
    (f,) = ours
    np.testing.assert_allclose(f.cell, atoms.cell.array)
    np.testing.assert_array_equal(f.pbc, atoms.pbc)
    np.testing.assert_allclose(f.positions, atoms.positions)
    np.testing.assert_array_equal(f.numbers, atoms.numbers)
    results = atoms.calc.results if atoms.calc is not None else {}
    if f.labels.energy is not None or "energy" in results:
        assert f.labels.energy == pytest.approx(float(results["energy"]))
    if f.labels.stress is not None or "stress" in results:
        from warehouse.units import EV_PER_A3_TO_GPA

        np.testing.assert_allclose(f.labels.stress, results["stress"] * EV_PER_A3_TO_GPA)


@pytest.mark.parametrize("reader", READERS)
def test_every_grammar_case_is_read(reader, tmp_path) -> None:
    """Refusing is allowed only for cause: every form above is read, by both readers."""
    refused = []
    for comment in GRAMMAR:
        try:
            _read(_write(tmp_path, _frame(comment, _atoms_for(comment))), reader)
        except IngestError as exc:
            refused.append((comment, str(exc)))
    assert refused == [], refused


def test_grant_readonly_to_a_reserved_role_is_a_clean_error(cli) -> None:
    res = cli("db", "grant-readonly", "public")
    assert res.exit_code == 1 and res.output.startswith("Error: ") and "Traceback" not in res.output
    assert res.output.count("\n") == 1, res.output


# --- the other readers ----------------------------------------------------------------------

def _mlearn(tmp_path: Path, outputs: dict, lattice: dict | None = None) -> Path:
    import json

    rec = {"structure": {"lattice": lattice or {"matrix": [[3.6, 0, 0], [0, 3.6, 0], [0, 0, 3.6]]},
                         "sites": [{"species": [{"element": "Cu", "occu": 1}], "xyz": [0, 0, 0]}]},
           "outputs": outputs}
    path = tmp_path / "ml.json"
    path.write_text(json.dumps([rec]))
    return path


@pytest.mark.parametrize("outputs, lattice", [
    ({"energy": True}, None), ({"energy": "-3.6"}, None), ({"energy": -3.6, "forces": [[True, 0, 0]]}, None),
    ({"energy": -3.6, "forces": [["1", 0, 0]]}, None),
    ({"energy": -3.6}, {"matrix": [[3.6, 0, 0], [0, 3.6, 0], [0, 0, 3.6]], "pbc": [True, "x", True]}),
    ({"energy": -3.6e9}, None),
], ids=["energy-true", "energy-string", "force-true", "force-string", "pbc-word", "energy-bound"])
def test_mlearn_json_labels_must_be_numbers(outputs, lattice, tmp_path) -> None:
    from ingest.mlearn import parse_mlearn_json

    with pytest.raises(IngestError) as info:
        list(parse_mlearn_json(_mlearn(tmp_path, outputs, lattice)))
    assert "\n" not in str(info.value) and ("record 0" in str(info.value) or "frame 0" in str(info.value))


def test_a_json_key_given_twice_is_refused(tmp_path) -> None:
    from ingest.mlearn import parse_mlearn_json
    from ingest.timings import parse_timings_table

    path = tmp_path / "ml.json"
    path.write_text('[{"structure": {}, "structure": {}}]')
    with pytest.raises(IngestError, match="twice"):
        list(parse_mlearn_json(path))
    path = tmp_path / "t.json"
    path.write_text('[{"model": "a", "wall_s": 1, "wall_s": 2}]')
    with pytest.raises(IngestError, match="twice"):
        parse_timings_table(path)


@pytest.mark.parametrize("data", [b"name,value,unit\nx,\xff\xfe,GPa\n", b"name,value\nx," + b"9" * 200_000 + b"\n",
                                  b"name,value\nx,1_0\n", b"name,value\nx,nan\n", b"name,value\nx,1,extra\n"],
                         ids=["bad-bytes", "huge-field", "underscore-number", "nan", "extra-field"])
def test_csv_tables_refuse_in_one_line(data, tmp_path) -> None:
    from ingest.md import parse_observables_csv

    path = tmp_path / "obs.csv"
    path.write_bytes(data)
    with pytest.raises(IngestError) as info:
        parse_observables_csv(path)
    assert "\n" not in str(info.value) and "line" in str(info.value)


def test_an_unexpected_exception_in_a_reader_is_one_line_naming_the_file(tmp_path) -> None:
    from ingest.textio import reader_guard

    @reader_guard
    def parse(path):
        yield 1
        raise ZeroDivisionError("boom")

    with pytest.raises(IngestError) as info:
        list(parse(tmp_path / "x.csv"))
    assert str(info.value).startswith(str(tmp_path / "x.csv")) and "ZeroDivisionError" in str(info.value)
    assert getattr(info.value, "unexpected", False)
