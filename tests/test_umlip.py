"""Universal MLIPs through torch (CHGNet, SevenNet): `warehouse evaluate` gives what the model
gives when called directly, records the model's identity, and records failures per structure.

A handful of 1-4 atom cells keeps these to seconds of model time; they skip when the extra
``umlip`` (torch, chgnet, sevenn) is not installed.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import write
from sqlalchemy import select

torch = pytest.importorskip("torch", reason="the umlip extra is not installed")
pytest.importorskip("chgnet", reason="the umlip extra is not installed")
pytest.importorskip("sevenn", reason="the umlip extra is not installed")

from ingest.api import ingest_structures  # noqa: E402
from ingest.calculators import CalculatorError, parse_calculator_spec  # noqa: E402
from ingest.evaluate import run_evaluate  # noqa: E402
from ingest.umlip import UMLIPError, declared, loaded, resolve_device  # noqa: E402
from warehouse import models as m  # noqa: E402
from warehouse.hashing import sha256_file  # noqa: E402
from warehouse.units import ase_stress_to_gpa  # noqa: E402

from test_evaluate_cost import _stored_predictions  # noqa: E402

DS = "tiny-metals"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: CI and shared machines have few cores; threads spinning on each other
    cost more than they give on 1-4 atom cells."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_structures() -> list[Atoms]:
    """Rattled (non-zero forces and stress) small cells: fcc Cu, bcc W, hcp Mg, a CuNi pair."""
    rng = np.random.default_rng(7)
    cells = [bulk("Cu", "fcc", a=3.6, cubic=True), bulk("W", "bcc", a=3.17, cubic=True),
             bulk("Mg", "hcp", a=3.21, c=5.21)]
    cuni = bulk("Cu", "fcc", a=3.55, cubic=True)
    cuni.symbols[1] = "Ni"
    cells.append(cuni)
    for a in cells:
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        a.info["energy"] = -1.0 * len(a)  # a placeholder reference so the set is a dataset
    return cells


@pytest.fixture
def tiny(wh, tmp_path: Path) -> list[Atoms]:
    frames = tiny_structures()
    path = tmp_path / "tiny.xyz"
    write(path, frames, format="extxyz")
    ingest_structures(wh, path, dataset=DS, level_of_theory="made-up")
    return frames


def direct_calculator(text: str):
    """The model built the way its own documentation says, independent of ingest.umlip."""
    if text.startswith("chgnet"):
        from chgnet.model import CHGNet
        from chgnet.model.dynamics import CHGNetCalculator

        version = text.partition(":")[2] or "0.3.0"
        return CHGNetCalculator(model=CHGNet.load(model_name=version, verbose=False), use_device="cpu")
    from sevenn.calculator import SevenNetCalculator

    _, name, *modal = text.split(":")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return SevenNetCalculator(name, device="cpu", modal=modal[0] if modal else None)


def _assert_equal_to_direct(wh, model: str, calc, frames: list[Atoms]) -> None:
    stored = _stored_predictions(wh, model)
    assert len(stored) == len(frames)
    for i, atoms in enumerate(frames):
        atoms = atoms.copy()
        energy, stress, forces = stored[i]
        e = calc.get_potential_energy(atoms)
        assert energy == pytest.approx(e, rel=1e-6)
        np.testing.assert_allclose(forces, calc.get_forces(atoms), atol=1e-5, rtol=0)
        np.testing.assert_allclose(stress, ase_stress_to_gpa(calc.get_stress(atoms)), atol=1e-4, rtol=0)


@pytest.mark.parametrize("text, batch_size", [
    ("chgnet", 1), ("chgnet:0.3.0", 3), ("sevennet:7net-0", 1), ("sevennet:7net-0", 4),
], ids=["chgnet-one-at-a-time", "chgnet-batched", "7net-0-one-at-a-time", "7net-0-batched"])
def test_evaluate_equals_the_model_called_directly(wh, tiny, text: str, batch_size: int) -> None:
    run_evaluate(wh, model="m", calculator=text, dataset=DS, batch_size=batch_size, md_steps=0)
    _assert_equal_to_direct(wh, "m", direct_calculator(text), tiny)


def test_multi_fidelity_modal_equals_direct(wh, tiny) -> None:
    text = "sevennet:7net-mf-0:PBE"
    run_evaluate(wh, model="mf", calculator=text, dataset=DS, batch_size=2, md_steps=0)
    _assert_equal_to_direct(wh, "mf", direct_calculator(text), tiny)


def test_model_row_and_timings_say_what_ran(wh, tiny) -> None:
    run_evaluate(wh, model="chg", calculator="chgnet", dataset=DS, batch_size=2, md_steps=3,
                 warmup_steps=1, sizes=[8], device="auto")
    spec = parse_calculator_spec("chgnet")
    with wh.session() as s:
        row = s.scalar(select(m.Model).where(m.Model.name == "chg"))
        level = s.get(m.LevelOfTheory, row.level_of_theory_id)
        timings = s.scalars(select(m.Timing).where(m.Timing.model_id == row.id)).all()
    assert (row.family, row.version, row.conservative) == ("CHGNet", "0.3.0", True)
    assert row.n_parameters == 412_525  # CHGNet 0.3.0, as the package prints it
    assert "MPtrj" in row.training_data and level.name == "MPtrj PBE/PBE+U"
    assert row.licence.startswith("BSD") and row.doi
    assert row.file_sha256 == sha256_file(spec.files[0])
    assert row.extra["dtype"] == "float32" and "Cu" in row.extra["elements"]
    assert Path(row.extra["weights"]) == spec.files[0]
    elements, files = declared(spec.umlip)  # for a species pre-flight and the model's binding
    assert len(elements) == 94 and "Pu" in elements and files == (spec.files[0],)
    by_task = {t.task: t for t in timings}
    inference, md = by_task["inference"], by_task["md"]
    assert inference.precision == md.precision == "float32"
    assert inference.software.startswith("chgnet (torch ") and inference.software_version
    assert inference.extra["batch_size"] == 2 and inference.extra["device"] == resolve_device("auto")
    assert inference.n_atoms == sum(len(a) for a in tiny) and inference.wall_s > 0
    assert md.n_steps == 3 and md.wall_s > 0


def test_element_the_model_lacks_is_a_failure_of_that_structure(wh, tmp_path: Path) -> None:
    frames = tiny_structures()[:2]
    odd = Atoms("Am2", positions=[[0, 0, 0], [1.7, 1.7, 1.7]], cell=[3.4, 3.4, 3.4], pbc=True)
    odd.info["energy"] = -1.0
    path = tmp_path / "odd.xyz"
    write(path, [frames[0], odd, frames[1]], format="extxyz")
    ingest_structures(wh, path, dataset="odd", level_of_theory="made-up")
    for text in ("chgnet", "sevennet:7net-0"):
        for batch_size in (1, 3):
            name = f"{text}-{batch_size}"
            run_evaluate(wh, model=name, calculator=text, dataset="odd", batch_size=batch_size,
                         md_steps=0)
            with wh.session() as s:
                rows = s.execute(
                    select(m.DatasetMember.source_index, m.Prediction.status, m.Prediction.message)
                    .join(m.Prediction, m.Prediction.structure_id == m.DatasetMember.structure_id)
                    .join(m.Model, m.Model.id == m.Prediction.model_id).where(m.Model.name == name)
                ).all()
            status = {i: (st, msg) for i, st, msg in rows}
            assert status[0][0] == status[2][0] == "ok", name
            assert status[1][0] == "failed" and "has no parameters for Am" in status[1][1], name


def test_out_of_memory_is_recorded_per_structure(wh, tiny, monkeypatch) -> None:
    """A batch that runs out of memory is retried one structure at a time: the cells under the
    (tiny, simulated) limit succeed, the one over it fails with torch's own error."""
    model = loaded(parse_calculator_spec("chgnet").umlip, "cpu").model
    real_forward = model.forward
    limit = 3  # atoms per model call

    def forward(graphs, **kw):
        n = sum(int(g.atomic_number.numel()) for g in graphs)
        if n > limit:
            raise torch.OutOfMemoryError(f"simulated: {n} atoms over a limit of {limit}")
        return real_forward(graphs, **kw)

    monkeypatch.setattr(model, "forward", forward)
    run_evaluate(wh, model="oom", calculator="chgnet", dataset=DS, batch_size=4, md_steps=0)
    with wh.session() as s:
        rows = s.execute(
            select(m.DatasetMember.source_index, m.Prediction.status, m.Prediction.message)
            .join(m.Prediction, m.Prediction.structure_id == m.DatasetMember.structure_id)
        ).all()
    by_index = {i: (st, msg) for i, st, msg in rows}
    for i, atoms in enumerate(tiny):
        st, msg = by_index[i]
        if len(atoms) > limit:
            assert st == "failed" and msg.startswith("OutOfMemoryError: simulated"), (i, msg)
        else:
            assert st == "ok", (i, msg)


@pytest.mark.parametrize("text, message", [
    ("sevennet:7net-mf-0", "multi-fidelity; add the modal"),
    ("sevennet:7net-0:PBE", "has no modals"),
    ("sevennet:7net-99", "unknown model"),
    ("chgnet:9.9.9", "unknown model"),
    ("sevennet", "say which SevenNet"),
], ids=["mf-needs-modal", "no-modal", "unknown-7net", "unknown-chgnet", "no-name"])
def test_bad_umlip_specs(text: str, message: str) -> None:
    with pytest.raises(CalculatorError, match=message):
        parse_calculator_spec(text)


def test_devices() -> None:
    assert resolve_device("cpu") == "cpu"
    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
    else:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(UMLIPError, match="sees no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(UMLIPError, match="use cpu, cuda"):
        resolve_device("tpu")
    assert parse_calculator_spec("emt").resolve_device("auto") == "cpu"


def test_a_model_is_loaded_once_on_the_device_it_runs_on(monkeypatch) -> None:
    """What a uMLIP declares (elements, weights, its model row) comes from the model loaded on
    the command's --device, which then evaluates: not a CPU copy loaded first."""
    from ingest import umlip

    devices: list[str] = []

    class Recording(umlip.UMLIP):
        def __init__(self, spec, device: str = "cpu") -> None:
            devices.append(device)
            super().__init__(spec, "cpu")  # this machine's only device; the key is what counts

    monkeypatch.setattr(umlip, "UMLIP", Recording)
    monkeypatch.setattr(umlip, "_LOADED", {})
    monkeypatch.setattr(umlip, "resolve_device", lambda requested: requested)
    spec = parse_calculator_spec("chgnet")
    spec.device = "cuda:1"
    assert "Cu" in spec.elements() and spec.files and spec.model_attrs()["n_parameters"]
    spec.provider(spec.device)
    assert devices == ["cuda:1"]


def test_cli_evaluate_with_batch_size(cli, tiny) -> None:
    r = cli("evaluate", "--model", "7", "--calculator", "sevennet:7net-0", "--dataset", DS,
            "--batch-size", "2", "--device", "cpu", "--md-steps", "0")
    assert r.exit_code == 0, r.output
    assert "(batches of 2)" in r.output
    r = cli("evaluate", "--model", "x", "--calculator", "sevennet:7net-mf-0", "--dataset", DS)
    assert r.exit_code != 0 and "add the modal" in r.output
    assert json.loads(cli("timings", "--format", "json").output)[0]["model"] == "7"


def test_binding_identity_is_canonical() -> None:
    """One weights file named two ways is one model; the modal of a multi-fidelity model is
    part of what the name is bound to."""
    ident = lambda text: parse_calculator_spec(text).identity  # noqa: E731
    assert ident("chgnet") == ident("chgnet:0.3.0") == "chgnet:0.3.0"
    assert ident("sevennet:7NET-0") == "sevennet:7net-0"
    assert ident("sevennet:7net-mf-0:pbe") != ident("sevennet:7net-mf-0:R2SCAN")


def test_wrapped_provider_keeps_its_batched_path(wh, tiny) -> None:
    """Calculators (a new calculator after an exception) passes predict_batch through."""
    from ingest.inference import Calculators, EvalClock, evaluate_frames
    from warehouse.structures import iter_dataset_frames

    model = loaded(parse_calculator_spec("chgnet").umlip, "cpu")
    calls: list[int] = []

    class Spy:
        __call__ = staticmethod(model)
        check_species = staticmethod(model.check_species)

        @staticmethod
        def predict_batch(batch):
            calls.append(len(batch))
            return model.predict_batch(batch)

    calcs = Calculators(Spy, first=False)
    assert getattr(calcs, "predict_batch", None) is not None
    preds = list(evaluate_frames(calcs, (f for _, f in iter_dataset_frames(wh, DS)),
                                 clock=EvalClock(), batch_size=4))
    assert [p.status for p in preds] == ["ok"] * len(tiny) and calls == [len(tiny)]
