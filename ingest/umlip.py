"""Universal MLIPs through torch: CHGNet and SevenNet, loaded from the weights their wheels ship.

``--calculator chgnet[:0.3.0|0.2.0]`` and ``--calculator sevennet:7net-0|7net-l3i5|7net-mf-0[:MODAL]``
(the extra ``pip install 'mlip-warehouse[umlip]'``). Each model is described by a :class:`Card`
(family, version, training data and its level of theory, licence, paper) that fills the
``models`` row, together with what is read from the loaded weights: parameter count, the sha256
of the weights file, the element list.

Both families compute in **float32** (their published weights; neither is cast here).
Inference is batched through each model's own batching: CHGNet's ``predict_structure`` takes a
list and a batch size; SevenNet's model runs on a ``torch_geometric`` batch of its atom graphs
(what its own ``sevenn inference`` does). A batch that raises (out of memory, a structure the
graph builder rejects) is retried one structure at a time, so every failure is recorded against
its own structure with its own reason. MD and one-at-a-time evaluation use the families' ASE
calculators on the same loaded model.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from ingest.calculators import CalculatorError
from warehouse.hashing import sha256_file
from warehouse.units import EV_PER_A3_TO_GPA

FAMILIES = ("chgnet", "sevennet")
DTYPE = "float32"
INSTALL_HINT = "install the extra: pip install 'mlip-warehouse[umlip]'"

# MPtrj: the Materials Project relaxation trajectories (Deng et al. 2023), VASP PBE and PBE+U
# with MP2020 compatibility corrections; not the PBE settings of the datasets studied here, so
# energies are compared with a per-element offset (docs/UMLIP.md).
MPTRJ = "MPtrj (Materials Project relaxation trajectories, 1.58M structures, 146k materials)"
MPTRJ_LEVEL = ("MPtrj PBE/PBE+U", {
    "code": "VASP", "functional": "PBE (PBE+U for oxides/fluorides of Co Cr Fe Mn Mo Ni V W)",
    "cutoff_ev": 520.0, "pseudopotentials": "PAW (MP set)",
    "extra": {"corrections": "MP2020 compatibility", "source": "Materials Project"}})
MP_R2SCAN_LEVEL = ("MP r2SCAN", {
    "code": "VASP", "functional": "r2SCAN", "cutoff_ev": 680.0, "pseudopotentials": "PAW (MP set)",
    "extra": {"source": "Materials Project r2SCAN calculations"}})


class UMLIPError(CalculatorError):
    """A uMLIP spec or device that cannot be used."""


@dataclass(frozen=True, slots=True)
class Card:
    """What is known about a published model beyond its weights."""

    family: str  # "CHGNet" | "SevenNet"
    name: str  # the family's own name for the weights, e.g. "0.3.0", "7net-0"
    version: str
    training_data: str
    level: tuple[str, dict[str, Any]]
    licence: str
    url: str
    doi: str
    modals: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # modal -> level


CARDS: dict[str, Card] = {
    "chgnet:0.3.0": Card("CHGNet", "0.3.0", "0.3.0", MPTRJ, MPTRJ_LEVEL, "BSD-3-Clause (modified)",
                         "https://github.com/CederGroupHub/chgnet", "10.1038/s42256-023-00716-3"),
    "chgnet:0.2.0": Card("CHGNet", "0.2.0", "0.2.0", MPTRJ, MPTRJ_LEVEL, "BSD-3-Clause (modified)",
                         "https://github.com/CederGroupHub/chgnet", "10.1038/s42256-023-00716-3"),
    "sevennet:7net-0": Card("SevenNet", "7net-0", "SevenNet-0 (11Jul2024)", MPTRJ, MPTRJ_LEVEL,
                            "GPL-3.0 (weights); MIT (sevenn package)",
                            "https://github.com/MDIL-SNU/SevenNet", "10.1021/acs.jctc.4c00190"),
    "sevennet:7net-l3i5": Card("SevenNet", "7net-l3i5", "SevenNet-l3i5", MPTRJ, MPTRJ_LEVEL,
                               "GPL-3.0 (weights); MIT (sevenn package)",
                               "https://github.com/MDIL-SNU/SevenNet", "10.1021/acs.jctc.4c00190"),
    "sevennet:7net-mf-0": Card(
        "SevenNet", "7net-mf-0", "SevenNet-MF-0", MPTRJ + " and MP r2SCAN (multi-fidelity)",
        MPTRJ_LEVEL, "GPL-3.0 (weights); MIT (sevenn package)",
        "https://github.com/MDIL-SNU/SevenNet", "10.1021/jacs.4c14455",
        modals={"PBE": MPTRJ_LEVEL, "R2SCAN": MP_R2SCAN_LEVEL}),
}


@dataclass(frozen=True, slots=True)
class UMLIPSpec:
    """A parsed ``chgnet[:VERSION]`` or ``sevennet:NAME[:MODAL]``."""

    family: str  # "chgnet" | "sevennet"
    name: str
    modal: str | None = None

    @property
    def card(self) -> Card:
        return CARDS[f"{self.family}:{self.name}"]

    @property
    def level(self) -> tuple[str, dict[str, Any]]:
        """The level of theory the predictions correspond to (the modal's, for multi-fidelity)."""
        return self.card.modals[self.modal] if self.modal else self.card.level

    @property
    def weights_path(self) -> Path:
        """The weights file inside the installed wheel (no download ever)."""
        if self.family == "chgnet":
            folder = Path(_package_dir("chgnet")) / "pretrained" / self.name
            found = sorted(folder.glob("*.pth.tar"))
            if not found:
                raise UMLIPError(f"chgnet:{self.name}: no weights in {folder}")
            return found[0]
        from sevenn.util import pretrained_name_to_path

        try:
            return Path(pretrained_name_to_path(self.name))
        except (ValueError, FileNotFoundError) as exc:
            raise UMLIPError(f"sevennet:{self.name}: weights not installed ({exc})") from None


def parse_umlip(family: str, rest: str, text: str) -> UMLIPSpec:
    """``chgnet`` + ``""|0.3.0|0.2.0``; ``sevennet`` + ``7net-0|7net-l3i5|7net-mf-0[:MODAL]``."""
    if family == "chgnet":
        name = rest or "0.3.0"
        modal = None
    else:
        name, _, modal_text = rest.partition(":")
        modal = modal_text or None
        if not name:
            raise UMLIPError(f"--calculator {text!r}: say which SevenNet, e.g. sevennet:7net-0")
    key = f"{family}:{name.lower() if family == 'sevennet' else name}"
    card = CARDS.get(key)
    if card is None:
        known = ", ".join(k for k in CARDS if k.startswith(family))
        raise UMLIPError(f"--calculator {text!r}: unknown model; known: {known}")
    if card.modals:
        modal = (modal or "").upper()
        if modal not in card.modals:
            raise UMLIPError(f"--calculator {text!r}: {card.name} is multi-fidelity; add the modal,"
                             f" one of {', '.join(card.modals)} (e.g. {key}:PBE)")
    elif modal:
        raise UMLIPError(f"--calculator {text!r}: {card.name} has no modals")
    return UMLIPSpec(family, card.name, modal)


def _package_dir(dist: str) -> str:
    found = importlib.util.find_spec(dist)
    if found is None or not found.submodule_search_locations:
        raise UMLIPError(f"{dist} is not installed; {INSTALL_HINT}")
    return list(found.submodule_search_locations)[0]


def resolve_device(requested: str) -> str:
    """``cpu``, ``auto`` (CUDA when torch sees one, else CPU) or ``cuda[:N]`` (checked)."""
    requested = requested.strip().lower()
    if requested == "cpu":
        return "cpu"
    if requested != "auto" and not requested.startswith("cuda"):
        raise UMLIPError(f"--device {requested!r}: use cpu, cuda, cuda:N or auto")
    try:
        import torch
    except ImportError:
        if requested == "auto":
            return "cpu"
        raise UMLIPError(f"--device {requested}: torch is not installed; {INSTALL_HINT}") from None
    if not torch.cuda.is_available():
        if requested == "auto":
            return "cpu"
        raise UMLIPError(f"--device {requested}: torch {torch.__version__} sees no CUDA device"
                         " (use --device cpu or auto)")
    if requested == "auto":
        return "cuda"
    index = torch.device(requested).index or 0
    if index >= torch.cuda.device_count():
        raise UMLIPError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s)")
    return requested


@dataclass(slots=True)
class Result:
    """One structure's prediction: energy (eV, total), forces (eV/Å), stress (GPa, ASE sign,
    Voigt) or None for a non-periodic structure."""

    energy: float
    forces: np.ndarray
    stress_gpa: np.ndarray | None


class UMLIP:
    """A loaded uMLIP on one device. Called with ``Atoms`` it gives an ASE calculator (the
    provider protocol of :mod:`ingest.evaluate`); :meth:`predict_batch` is the batched path."""

    def __init__(self, spec: UMLIPSpec, device: str = "cpu") -> None:
        self.spec = spec
        self.device = resolve_device(device)
        self._calc: Any = None
        try:
            self.model = self._load()
        except ImportError as exc:
            raise UMLIPError(f"{spec.family}: cannot import ({exc}); {INSTALL_HINT}") from None

    # -- what the warehouse records ---------------------------------------------------------

    @cached_property
    def elements(self) -> frozenset[str]:
        """The chemical symbols the model has embeddings for."""
        if self.spec.family == "chgnet":
            # CHGNet's atom embedding is indexed by Z - 1 for Z = 1..n (94 in 0.2.0/0.3.0)
            n = self.model.atom_embedding.embedding.num_embeddings
            return frozenset(chemical_symbols[1 : n + 1])
        return frozenset(chemical_symbols[z] for z in self.model.type_map)

    @cached_property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    # -- loading ------------------------------------------------------------------------------

    def _load(self) -> Any:
        if self.spec.family == "chgnet":
            from chgnet.model import CHGNet

            model = CHGNet.from_file(str(self.spec.weights_path), verbose=False)
            return model.to(self.device).eval()
        from sevenn.util import load_checkpoint

        with warnings.catch_warnings():  # "no tensor-product accelerator": known, CPU path
            warnings.simplefilter("ignore", UserWarning)
            model = load_checkpoint(str(self.spec.weights_path)).build_model()
        return model.to(self.device).eval()

    def __call__(self, atoms: Atoms) -> Any:
        """The family's ASE calculator on the loaded model (one structure at a time, MD)."""
        if self._calc is None:
            self._calc = self._ase_calculator()
        return self._calc

    def _ase_calculator(self) -> Any:
        if self.spec.family == "chgnet":
            from chgnet.model.dynamics import CHGNetCalculator

            return CHGNetCalculator(model=self.model, use_device=self.device)
        from sevenn.calculator import SevenNetCalculator

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return SevenNetCalculator(model=self.model, file_type="model_instance",
                                      device=self.device, modal=self.spec.modal)

    # -- batched inference --------------------------------------------------------------------

    def predict_batch(self, batch: Sequence[Atoms]) -> list[Result]:
        """Energy, forces and stress of every structure of ``batch`` in one model call."""
        for atoms in batch:
            self.check_species(atoms)
        if self.spec.family == "chgnet":
            return self._chgnet_batch(batch)
        return self._sevennet_batch(batch)

    def check_species(self, atoms: Atoms) -> None:
        missing = sorted(set(atoms.get_chemical_symbols()) - self.elements)
        if missing:
            raise UMLIPError(f"{self.spec.card.version} has no parameters for {', '.join(missing)}")

    def _chgnet_batch(self, batch: Sequence[Atoms]) -> list[Result]:
        from pymatgen.io.ase import AseAtomsAdaptor

        structures = [AseAtomsAdaptor.get_structure(a) for a in batch]
        out = self.model.predict_structure(structures, task="efs", batch_size=len(structures))
        if isinstance(out, dict):
            out = [out]
        results = []
        for atoms, pred in zip(batch, out, strict=True):
            # "e" is eV/atom; "s" is GPa with ASE's sign (CHGNetCalculator only rescales it)
            stress = _voigt(np.asarray(pred["s"], dtype=np.float64)) if atoms.pbc.all() else None
            results.append(Result(float(pred["e"]) * len(atoms),
                                  np.asarray(pred["f"], dtype=np.float64), stress))
        return results

    def _sevennet_batch(self, batch: Sequence[Atoms]) -> list[Result]:
        import sevenn._keys as KEY
        import torch
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph
        from torch_geometric.data import Batch

        cutoff = float(self.model.cutoff)
        graphs = []
        for atoms in batch:
            g = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, cutoff, with_shift=False))
            if self.spec.modal:
                g[KEY.DATA_MODALITY] = self.spec.modal
            graphs.append(g)
        data = Batch.from_data_list(graphs).to(self.device)
        self.model.set_is_batch_data(True)
        try:
            out = self.model(data)
        finally:
            self.model.set_is_batch_data(False)  # the ASE calculator's mode
        counts = out[KEY.NUM_ATOMS].tolist()
        energies = out[KEY.PRED_TOTAL_ENERGY].detach().cpu().numpy().reshape(-1)
        forces = torch.split(out[KEY.PRED_FORCE].detach().cpu(), counts)
        # SevenNet's stress: eV/Å^3, sign opposite to ASE's, order xx yy zz xy yz zx
        stress = -out[KEY.PRED_STRESS].detach().cpu().numpy().reshape(len(batch), 6)
        stress = stress[:, [0, 1, 2, 4, 5, 3]]
        return [Result(float(e), f.numpy().astype(np.float64),
                       s.astype(np.float64) * EV_PER_A3_TO_GPA if a.pbc.all() else None)
                for a, e, f, s in zip(batch, energies, forces, stress, strict=True)]


def _voigt(s: np.ndarray) -> np.ndarray:
    """3x3 -> Voigt xx yy zz yz xz xy."""
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


# -- what ingest.calculators asks of a uMLIP spec ---------------------------------------------

_LOADED: dict[tuple[UMLIPSpec, str], UMLIP] = {}


def loaded(spec: UMLIPSpec, device: str = "cpu") -> UMLIP:
    """The model of ``spec`` on ``device``, loaded once per process (weights are read once)."""
    device = resolve_device(device)
    key = (spec, device)
    if key not in _LOADED:
        _LOADED[key] = UMLIP(spec, device)
    return _LOADED[key]


def declared(spec: UMLIPSpec, device: str = "cpu") -> tuple[frozenset[str], tuple[Path, ...]]:
    """(elements the model has parameters for, its weights files): what a species pre-flight
    and a model's binding to its parameter files need, before any structure is evaluated. The
    model is loaded on ``device``, where the evaluation then finds it."""
    return loaded(spec, device).elements, (spec.weights_path,)


def _dist_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def software(spec: UMLIPSpec) -> tuple[str, str | None]:
    """(software, version) of a timing: the family's package and the torch it ran on."""
    dist = "chgnet" if spec.family == "chgnet" else "sevenn"
    return f"{dist} (torch {_dist_version('torch')})", _dist_version(dist)


def model_attrs(spec: UMLIPSpec, device: str = "cpu") -> dict[str, Any]:
    """The ``models`` row of ``spec``: its card plus what the loaded weights say.

    ``level_of_theory`` is (name, attributes) of the training data's DFT setting; the caller
    turns it into a ``levels_of_theory`` row.
    """
    card = spec.card
    model = loaded(spec, device)
    return {
        "family": card.family, "version": card.version + (f" ({spec.modal})" if spec.modal else ""),
        "framework": f"torch {_dist_version('torch')}", "n_parameters": model.n_parameters,
        "training_data": card.training_data, "conservative": True,  # forces = -dE/dx by autograd
        "licence": card.licence, "url": card.url, "doi": card.doi,
        "file_sha256": sha256_file(spec.weights_path), "level_of_theory": spec.level,
        "extra": {"elements": sorted(model.elements), "weights": str(spec.weights_path),
                  "dtype": DTYPE, "modal": spec.modal},
    }
