"""``--calculator SPEC``: which ASE calculator ``warehouse evaluate`` runs.

Short names for what ships or is common, and a general form for anything else:

* ``emt``: ASE's built-in EMT (no extra needed).
* ``eam:FILE``: ASE's ``EAM`` with one potential file (``.eam``, ``.eam.alloy``, ``.eam.fs``).
* ``eam:DIR``: a folder of single-element setfl files (e.g. the Zhou-2004 set): each structure
  gets ``DIR/<El>.eam.alloy`` for its one element; a structure with several elements fails
  (recorded, not fatal).
* ``eam:FILE1,FILE2,...``: several setfl files; each structure gets the one whose element list
  covers its elements.
* ``nep:FILE``: calorine's ``CPUNEP`` (the optional extra ``pip install 'mlip-warehouse[nep]'``).
* ``chgnet[:0.3.0|0.2.0]``, ``sevennet:7net-0|7net-l3i5|7net-mf-0[:MODAL]``: universal MLIPs
  through torch from the weights their wheels ship (extra ``umlip``; :mod:`ingest.umlip`).
* ``module:factory key=value ...``: ``module.factory(**kwargs)`` must return an ASE calculator,
  e.g. ``"mace.calculators:mace_mp model=medium default_dtype=float64"``. Values are read as
  YAML scalars (``1.5``, ``true``, ``[a, b]``); ``device`` is passed from ``--device`` when the
  factory takes one and the spec does not set it.

:func:`parse_calculator_spec` is pure; :meth:`CalculatorSpec.provider` builds calculators.
"""

from __future__ import annotations

import importlib
import inspect
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml
from ase import Atoms

from warehouse.errors import WarehouseError
from warehouse.hashing import sha256_file

Provider = Callable[[Atoms], Any]  # atoms -> an ASE calculator for them
SHORT_NAMES = ("emt", "eam", "nep")
UMLIP_FAMILIES = ("chgnet", "sevennet")  # ingest.umlip.FAMILIES, without importing torch


class CalculatorError(WarehouseError):
    """A ``--calculator`` spec that cannot be understood or built."""


@dataclass(slots=True)
class CalculatorSpec:
    text: str
    kind: str  # emt | eam | nep | umlip | module
    target: str = ""  # file, folder, file list or "module:factory"
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def files(self) -> list[Path]:
        if self.kind == "nep":
            return [Path(self.target)]
        if self.kind == "eam":
            p = Path(self.target)
            return sorted(p.glob("*.eam*")) if p.is_dir() else [Path(t) for t in self.target.split(",")]
        if self.kind == "umlip":
            return [self.umlip.weights_path]
        return []

    @property
    def umlip(self) -> Any:
        """The parsed uMLIP spec (:class:`ingest.umlip.UMLIPSpec`) of a ``umlip`` calculator."""
        from ingest.umlip import parse_umlip

        family, _, rest = self.target.partition(":")
        return parse_umlip(family, rest, self.text)

    def resolve_device(self, requested: str) -> str:
        """``--device`` made concrete: ``auto`` is CUDA only for torch calculators that see one."""
        if self.kind in ("umlip", "module"):
            from ingest.umlip import resolve_device

            return resolve_device(requested)
        return "cpu" if requested.strip().lower() == "auto" else requested

    @property
    def software(self) -> tuple[str, str | None]:
        """(name, version) of what computes the energies."""
        if self.kind in ("emt", "eam"):
            return f"ASE {self.kind.upper()}", _version("ase")
        if self.kind == "nep":
            return "calorine CPUNEP", _version("calorine")
        if self.kind == "umlip":
            from ingest.umlip import software

            return software(self.umlip)
        top = self.target.split(":")[0].split(".")[0]
        return self.target, _version(top)

    def model_attrs(self) -> dict[str, Any]:
        """What a new ``models`` row can say about the model from its spec."""
        if self.kind == "umlip":
            from ingest.umlip import model_attrs

            attrs = model_attrs(self.umlip)
            attrs["extra"] = {"calculator": self.text, **attrs["extra"]}
            return attrs
        attrs: dict[str, Any] = {
            "emt": {"family": "EMT", "framework": "ASE", "conservative": True},
            "eam": {"family": "EAM", "framework": "ASE", "conservative": True},
            "nep": {"family": "NEP", "framework": "calorine", "conservative": True},
        }.get(self.kind, {"framework": self.target.split(":")[0].split(".")[0]})
        files = self.files
        if len(files) == 1 and files[0].is_file():
            attrs["file_sha256"] = sha256_file(files[0])
        attrs["extra"] = {"calculator": self.text}
        return attrs

    @property
    def precision(self) -> str | None:
        if self.kind in SHORT_NAMES:
            return "float64"  # ASE's EMT/EAM and NEP_CPU compute in double precision
        if self.kind == "umlip":
            from ingest.umlip import DTYPE

            return DTYPE
        for key in ("default_dtype", "dtype", "precision"):
            if key in self.kwargs:
                return str(self.kwargs[key])
        return None

    def provider(self, device: str = "cpu") -> Provider:
        """A function giving the calculator for a structure (built once, reused)."""
        if self.kind == "emt":
            from ase.calculators.emt import EMT

            calc = EMT()
            return lambda atoms: calc
        if self.kind == "nep":
            return _nep_provider(self.target, device)
        if self.kind == "eam":
            return _eam_provider(self.target)
        if self.kind == "umlip":
            from ingest.umlip import loaded

            return loaded(self.umlip, device)
        return _module_provider(self.target, self.kwargs, device)


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def parse_calculator_spec(text: str) -> CalculatorSpec:
    """``emt`` | ``eam:PATH[,PATH...]`` | ``nep:FILE`` | ``module:factory [key=value ...]``."""
    try:
        words = shlex.split(text.strip())
    except ValueError as exc:
        raise CalculatorError(f"--calculator {text!r}: {exc}") from None
    if not words:
        raise CalculatorError("--calculator is empty; try emt, eam:FILE, nep:FILE, chgnet, sevennet:7net-0 or module:factory")
    head, args = words[0], words[1:]
    kind, _, target = head.partition(":")
    kwargs = _kwargs(args, text)
    if kind == "emt" and not target:
        spec = CalculatorSpec(text, "emt")
    elif kind in ("eam", "nep"):
        if not target:
            raise CalculatorError(f"--calculator {text!r}: say which file, e.g. {kind}:path/to/file")
        spec = CalculatorSpec(text, kind, target)
        for p in spec.files or [Path(target)]:
            if not p.exists():
                raise CalculatorError(f"--calculator {text!r}: no such file or folder: {p}")
        if kind == "eam" and not spec.files:
            raise CalculatorError(f"--calculator {text!r}: no *.eam* files in folder {target}")
    elif kind in UMLIP_FAMILIES:
        spec = CalculatorSpec(text, "umlip", head)
        spec.umlip  # noqa: B018 -- parse now: an unknown model or modal is a spec error
    elif target and kind.replace(".", "").replace("_", "").isalnum():
        spec = CalculatorSpec(text, "module", head)
    else:
        raise CalculatorError(
            f"--calculator {text!r} is not understood; use emt, eam:FILE|DIR, nep:FILE or"
            " module:factory key=value ...")
    if kwargs and spec.kind != "module":
        raise CalculatorError(f"--calculator {text!r}: key=value arguments go with module:factory")
    spec.kwargs = kwargs
    return spec


def _kwargs(args: list[str], text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for arg in args:
        key, eq, raw = arg.partition("=")
        if not eq or not key.isidentifier():
            raise CalculatorError(f"--calculator {text!r}: {arg!r} is not key=value")
        try:
            out[key] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            out[key] = raw
    return out


def _nep_provider(path: str, device: str) -> Provider:
    if device != "cpu":
        raise CalculatorError("nep: runs on the CPU (calorine CPUNEP); use --device cpu")
    try:
        from calorine.calculators import CPUNEP
    except ImportError:
        raise CalculatorError(
            "nep: needs calorine; install the extra: pip install 'mlip-warehouse[nep]'") from None
    calc = CPUNEP(path)
    return lambda atoms: calc


def setfl_elements(path: Path) -> list[str]:
    """Elements of a setfl (``.eam.alloy``/``.eam.fs``) file: line 4 is ``N El1 El2 ...``."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = [fh.readline() for _ in range(4)]
    words = lines[3].split()
    if not words or not words[0].isdigit() or len(words) != int(words[0]) + 1:
        raise CalculatorError(f"{path}: line 4 is not 'N El1 ... ElN' (not a setfl file?)")
    return words[1:]


def _eam_provider(target: str) -> Provider:
    from ase.calculators.eam import EAM

    folder = Path(target)
    built: dict[Path, Any] = {}

    def build(path: Path) -> Any:
        if path not in built:
            built[path] = EAM(potential=str(path))
        return built[path]

    if folder.is_dir():
        def by_element(atoms: Atoms) -> Any:
            elements = sorted(set(atoms.get_chemical_symbols()))
            if len(elements) != 1:
                raise ValueError(f"eam:{target} holds single-element files; this structure has"
                                 f" {','.join(elements)}")
            path = folder / f"{elements[0]}.eam.alloy"
            if not path.is_file():
                raise ValueError(f"no EAM file for {elements[0]}: {path} is missing")
            return build(path)
        return by_element
    files = [Path(t) for t in target.split(",")]
    if len(files) == 1:
        calc = build(files[0])
        return lambda atoms: calc
    covers = [(set(setfl_elements(p)), p) for p in files]

    def by_cover(atoms: Atoms) -> Any:
        need = set(atoms.get_chemical_symbols())
        for have, path in covers:
            if need <= have:
                return build(path)
        raise ValueError(f"no EAM file in the list covers {','.join(sorted(need))}")
    return by_cover


def _module_provider(target: str, kwargs: dict[str, Any], device: str) -> Provider:
    module_name, _, factory_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CalculatorError(f"--calculator {target}: cannot import {module_name}: {exc}") from None
    factory = getattr(module, factory_name, None)
    if factory is None or not callable(factory):
        raise CalculatorError(f"--calculator {target}: {module_name} has no callable {factory_name}")
    kwargs = dict(kwargs)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    if "device" in params and "device" not in kwargs:
        kwargs["device"] = device
    try:
        calc = factory(**kwargs)
    except Exception as exc:
        exc.add_note(f"while building --calculator {target} with {kwargs}")
        raise
    if not hasattr(calc, "get_potential_energy"):
        raise CalculatorError(f"--calculator {target}: the factory returned {type(calc).__name__},"
                              " not an ASE calculator")
    return lambda atoms: calc
