"""Issue 16, identity and failures, on the real shared data: a model name bound to its
parameters, failures with their real reasons, names checked, datasets and models renamed and
removed, reference files refused as predictions, no repeated work, gpumd taking its dataset's
level of theory. Each test names the defect of the issue it guards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ase.calculators.emt import EMT
from sqlalchemy import func, select

from ingest.inference import evaluate_frames
from warehouse import models as m
from warehouse.structures import iter_dataset_frames

MO = "mlearn/data/Mo/test.json"
CU = "mlearn/data/Cu/test.json"
UNEP = "gpumd/potentials/Song-2024-UNEP-v1-AgAlAuCrCuMgMoNiPbPdPtTaTiVWZr.txt"
V4430 = "gpumd_wizard/unep_v1_variants/4-4-30/nep.txt"
ZHOU = "gpumd_wizard/eam_zhou"
PBTE = "gpumd/nep_train_PbTe"


def _ingest(cli, path: Path, dataset: str, level: str = "mlearn-PBE", *extra: str) -> None:
    res = cli("ingest", "structures", path, "-d", dataset, "-l", level, *extra)
    assert res.exit_code == 0, res.output


def _count(wh, table) -> int:
    with wh.session() as s:
        return s.scalar(select(func.count()).select_from(table))


def _messages(wh, model: str) -> dict[str, int]:
    with wh.session() as s:
        rows = s.execute(select(m.Prediction.message, func.count())
                         .join(m.Model, m.Model.id == m.Prediction.model_id)
                         .where(m.Model.name == model, m.Prediction.status == "failed")
                         .group_by(m.Prediction.message)).all()
    return dict(rows)


# -- defect 2: a model name is bound to its parameter files ----------------------------------

def test_another_parameter_file_under_a_bound_name_is_refused(cli, wh, shared_data: Path) -> None:
    pytest.importorskip("calorine")
    _ingest(cli, shared_data / MO, "mo")
    res = cli("evaluate", "-m", "unep-v1", "-c", f"nep:{shared_data / UNEP}", "-d", "mo",
              "--md-steps", "0")
    assert res.exit_code == 0, res.output
    before = {t: _count(wh, t) for t in (m.Prediction, m.Timing, m.Model)}
    res = cli("evaluate", "-m", "unep-v1", "-c", f"nep:{shared_data / V4430}", "-d", "mo",
              "--md-steps", "0")
    assert res.exit_code == 1
    from warehouse.hashing import sha256_file

    # both hashes named, and the two ways out
    assert sha256_file(shared_data / UNEP) in res.output
    assert sha256_file(shared_data / V4430) in res.output
    assert "--version" in res.output and "new name" in res.output
    assert {t: _count(wh, t) for t in before} == before  # nothing stored, no timing filed

    res = cli("evaluate", "-m", "unep-v1", "-c", f"nep:{shared_data / V4430}", "-d", "mo",
              "--md-steps", "0", "--version", "4-4-30")
    assert res.exit_code == 0, res.output
    shown = cli("model", "show", "unep-v1@4-4-30", "-f", "json")
    fields = {r["field"]: r["value"] for r in json.loads(shown.stdout)}
    assert fields["version"] == "4-4-30" and fields["calculator"] == "nep"
    assert fields["parameters_sha256"] == sha256_file(shared_data / V4430)
    assert fields["parameter file nep.txt"] == sha256_file(shared_data / V4430)
    assert fields["other versions"] == "unep-v1"
    # the same file again under the first name is accepted (nothing new to evaluate)
    res = cli("evaluate", "-m", "unep-v1", "-c", f"nep:{shared_data / UNEP}", "-d", "mo",
              "--md-steps", "0")
    assert res.exit_code == 0 and "nothing evaluated" in res.output, res.output


def test_predictions_under_a_bound_name_must_name_the_same_parameters(cli, wh, shared_data: Path,
                                                                      tmp_path: Path) -> None:
    folder = shared_data / PBTE
    _ingest(cli, folder / "train.xyz", "pbte", "PBE")
    res = cli("ingest", "gpumd", folder, "--model", "pbte-nep", "--dataset", "pbte")
    assert res.exit_code == 0, res.output  # bound to the folder's nep.txt
    pred = shared_data / "gpumd/nep_prediction_PbTe"
    args = ("ingest", "gpumd", pred, "-m", "pbte-nep", "-d", "pbte", "--xyz", folder / "train.xyz")
    res = cli(*args)
    assert res.exit_code == 1 and "--parameters" in res.output, res.output
    res = cli(*args, "--parameters", shared_data / V4430)
    assert res.exit_code == 1 and "is bound to parameters" in res.output, res.output
    res = cli(*args, "--parameters", folder / "nep.txt")
    assert res.exit_code == 0, res.output
    # an unbound model holding predictions is not bound by an evaluate: it must be declared
    res = cli("model", "add", "pbte-nep", "--file", shared_data / V4430)
    assert res.exit_code == 1 and "is bound to parameters" in res.output


# -- defect 3: failures with their real reasons ----------------------------------------------

def test_a_fresh_calculator_after_an_exception_keeps_the_real_reason(wh, cli, shared_data: Path) -> None:
    """EMT reused after its first exception said "'EMT' object has no attribute 'nl'" for 18
    of the 23 Mo structures; every one now carries EMT's own reason."""
    _ingest(cli, shared_data / MO, "mo")
    frames = [f for _, f in iter_dataset_frames(wh, "mo")]
    messages = {p.message for p in evaluate_frames(EMT(), frames)}  # a bare calculator: reset()
    assert messages == {"NotImplementedError: No EMT-potential for Mo"}
    from ingest.inference import Calculators

    for calc in (Calculators(EMT), Calculators(lambda: (lambda atoms, c=EMT(): c))):
        messages = {p.message for p in evaluate_frames(calc, frames)}
        assert messages == {"NotImplementedError: No EMT-potential for Mo"}


def test_species_preflight_and_the_failures_command(cli, wh, shared_data: Path, tmp_path: Path) -> None:
    mix = tmp_path / "mix.json"
    mix.write_text(json.dumps(json.loads((shared_data / MO).read_text())[:4]
                              + json.loads((shared_data / CU).read_text())[:6]))
    _ingest(cli, mix, "mo-cu", "mlearn-PBE", "--format", "mlearn-json")
    res = cli("evaluate", "-m", "emt", "-c", "emt", "-d", "mo-cu", "--md-steps", "2",
              "--warmup", "1")
    assert res.exit_code == 0, res.output
    assert _messages(wh, "emt") == {"EMT has no parameters for Mo": 4}
    res = cli("failures", "--model", "emt", "--format", "json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 4
    assert {"model", "dataset", "structure_id", "formula", "status", "message"} <= set(rows[0])
    assert {(r["model"], r["dataset"], r["formula"], r["status"]) for r in rows} == {
        ("emt", "mo-cu", "Mo", "failed")}
    assert "4 failed, 0 missing" in res.stderr
    # a dataset with no element EMT knows is refused whole, before any work
    _ingest(cli, shared_data / MO, "mo")
    res = cli("evaluate", "-m", "emt", "-c", "emt", "-d", "mo")
    assert res.exit_code == 1 and "EMT has no parameters for Mo" in res.output
    # the Zhou EAM folder declares its 16 elements: Mo and Cu both covered
    res = cli("evaluate", "-m", "zhou", "-c", f"eam:{shared_data / ZHOU}", "-d", "mo-cu",
              "--md-steps", "0")
    assert res.exit_code == 0 and _messages(wh, "zhou") == {}, res.output
    # missing: the Mo structures of "mo" that no "emt" prediction covers
    res = cli("failures", "-m", "emt", "-d", "mo", "-f", "csv")
    assert res.stdout.count(",missing,") == 23 - 4


def test_md_timing_says_every_structure_failed(cli, wh, shared_data: Path) -> None:
    """Not "no periodic structure ... to run MD on" when the real cause was the failures."""
    _ingest(cli, shared_data / MO, "mo")
    res = cli("evaluate", "-m", "emt-module", "-c", "ase.calculators.emt:EMT", "-d", "mo")
    assert res.exit_code == 0, res.output
    assert "MD timing skipped: every structure failed" in res.output
    assert "No EMT-potential for Mo" in res.output and "warehouse failures" in res.output
    assert _messages(wh, "emt-module") == {"NotImplementedError: No EMT-potential for Mo": 23}


# -- defect 8: names ------------------------------------------------------------------------

@pytest.mark.parametrize("name, message", [
    ("", "is empty"), ("   ", "is empty"), ("x" * 256, "256 characters"),
    ("a\tb", "control character"), (" mo", "blanks"),
], ids=["empty", "blank", "too-long", "tab", "leading-blank"])
def test_bad_names_are_refused_everywhere(cli, wh, shared_data: Path, name: str, message: str) -> None:
    from warehouse.names import BadName, check_name

    with pytest.raises(BadName, match=message):
        check_name(name, what="dataset")
    res = cli("ingest", "structures", shared_data / MO, "-d", name, "-l", "PBE")
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output
    res = cli("ingest", "structures", shared_data / MO, "-d", "mo", "-l", name)
    assert res.exit_code == 1 and message in res.output
    assert _count(wh, m.Dataset) == 0
    _ingest(cli, shared_data / MO, "mo")
    res = cli("evaluate", "-m", name, "-c", "emt", "-d", "mo")
    assert res.exit_code == 1 and message in res.output
    res = cli("dataset", "rename", "mo", name)
    assert res.exit_code == 1 and message in res.output
    assert check_name("x" * 255) == "x" * 255


def test_rename_and_remove_datasets_and_models(cli, wh, shared_data: Path) -> None:
    _ingest(cli, shared_data / MO, "mo")
    _ingest(cli, shared_data / CU, "cu")
    for ds in ("mo", "cu"):
        res = cli("evaluate", "-m", "zhou", "-c", f"eam:{shared_data / ZHOU}", "-d", ds,
                  "--md-steps", "0")
        assert res.exit_code == 0, res.output
    assert cli("dataset", "rename", "mo", "cu").exit_code == 1  # taken
    res = cli("dataset", "rename", "mo", "mlearn-Mo-test")
    assert res.exit_code == 0, res.output
    res = cli("model", "rename", "zhou", "zhou-2004")
    assert res.exit_code == 0 and "lake files moved" in res.output, res.output
    with wh.session() as s:
        paths = s.scalars(select(m.LakeFile.path).where(m.LakeFile.kind == "predicted_forces")).all()
    assert paths and all("/model=zhou-2004/" in p for p in paths)
    lb = json.loads(cli("leaderboard", "-m", "zhou-2004", "-f", "json").stdout)
    assert {r["dataset"] for r in lb} == {"mlearn-Mo-test", "cu"}

    res = cli("model", "remove", "zhou-2004", input="n\n")
    assert res.exit_code == 1 and _count(wh, m.Prediction) == 54  # asked, declined, kept
    res = cli("model", "remove", "zhou-2004", "--yes")
    assert res.exit_code == 0 and "54 predictions" in res.output, res.output
    assert _count(wh, m.Prediction) == _count(wh, m.PredictionError) == _count(wh, m.Timing) == 0
    res = cli("dataset", "remove", "cu", "--yes")
    assert res.exit_code == 0 and "31 structures" in res.output, res.output
    assert _count(wh, m.Structure) == 23 and _count(wh, m.Reference) == 23
    check = cli("check")
    assert check.exit_code == 0 and "no orphans" in check.output, check.output  # files went too


# -- defect 9 (part): the reference file itself as predictions -------------------------------

def test_reference_file_as_predictions_is_refused(cli, wh, shared_data: Path) -> None:
    xyz = shared_data / PBTE / "train.xyz"
    _ingest(cli, xyz, "pbte", "PBE")
    res = cli("ingest", "predictions", xyz, "-m", "pbte-dft")
    assert res.exit_code == 1 and "equals the stored reference labels" in res.output
    assert "--force" in res.output and _count(wh, m.Prediction) == 0 and _count(wh, m.Model) == 0
    res = cli("ingest", "predictions", xyz, "-m", "pbte-dft", "--force")
    assert res.exit_code == 0 and "25 predictions" in res.output, res.output


# -- defect 11: no repeated work ------------------------------------------------------------

def test_evaluate_skips_an_md_timing_it_has(cli, wh, shared_data: Path) -> None:
    _ingest(cli, shared_data / MO, "mo")
    args = ("evaluate", "-m", "zhou", "-c", f"eam:{shared_data / ZHOU}/Mo.eam.alloy", "-d", "mo",
            "--md-steps", "2", "--warmup", "1", "--sizes", "54")
    assert cli(*args).exit_code == 0
    assert _count(wh, m.Timing) == 2  # inference + one MD size
    runs = _count(wh, m.IngestRun)
    res = cli(*args)
    assert res.exit_code == 0 and "not measured again" in res.output, res.output
    assert "nothing evaluated" in res.output
    assert _count(wh, m.Timing) == 2 and _count(wh, m.IngestRun) == runs  # no work, no run
    res = cli(*args, "--timing", "always")
    assert res.exit_code == 0 and _count(wh, m.Timing) == 4, res.output
    res = cli(*args, "--timing", "never", "--sizes", "128")
    assert res.exit_code == 0 and _count(wh, m.Timing) == 4


def test_second_demo_does_no_new_work(cli, wh) -> None:
    assert cli("demo").exit_code == 0
    counts = wh.counts()
    res = cli("demo")
    assert res.exit_code == 0
    assert "not read again" in res.stderr and "nothing evaluated" in res.stderr
    assert wh.counts() == counts  # not even a provenance row


# -- defect 5: ingest gpumd takes the dataset's level of theory ------------------------------

def test_readme_structures_then_gpumd_pair(cli, wh, shared_data: Path) -> None:
    folder = shared_data / PBTE
    _ingest(cli, folder / "train.xyz", "pbte", "PBE")
    res = cli("ingest", "gpumd", folder, "--model", "pbte-nep", "--dataset", "pbte")
    assert res.exit_code == 0, res.output
    assert "25 predictions" in res.output
    with wh.session() as s:
        assert s.scalars(select(m.LevelOfTheory.name)).all() == ["PBE"]
    # and a second structures file into the dataset without naming its level again
    res = cli("ingest", "structures", folder / "train.xyz", "-d", "pbte")
    assert res.exit_code == 0, res.output
