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
    # where a uMLIP is loaded, for what it declares as much as for evaluating (a model loaded
    # once, on the device it runs on): the command's --device, resolved
    device: str = "cpu"

    @property
    def files(self) -> list[Path]:
        """The parameter files: what a model name evaluated with this spec is bound to."""
        return list(declaration(self).files)

    def elements(self) -> frozenset[str] | None:
        """The elements the calculator has parameters for; None when it does not say."""
        return declaration(self).elements

    @property
    def label(self) -> str:
        """How messages name the calculator, e.g. "EMT", "NEP (nep.txt)"."""
        files = self.files
        shown = f" ({files[0].name})" if len(files) == 1 else f" ({self.target})" if files else ""
        return {"emt": "EMT", "eam": "EAM", "nep": "NEP"}.get(self.kind, self.target or self.kind) + shown

    @property
    def identity(self) -> str:
        """The calculator as part of a model's binding: its kind, or for ``module:factory`` the
        factory and its arguments, without what depends on the machine (``device``; a file
        argument is named by its file name, its content being bound by sha256)."""
        if self.kind in SHORT_NAMES:  # the parameters are the files, bound by sha256
            return self.kind
        if self.kind == "umlip":  # canonical: "chgnet" and "chgnet:0.3.0" are one model; the
            u = self.umlip  # modal is part of it (one weights file, two levels of theory)
            return f"{u.family}:{u.name}" + (f":{u.modal}" if u.modal else "")
        target = Path(self.target).name if _is_file(self.target) else self.target
        head = target if self.kind == "module" else f"{self.kind}:{target}" if target else self.kind
        args = [f"{k}={Path(v).name if _is_file(v) else v}"
                for k, v in sorted(self.kwargs.items()) if k != "device"]
        return " ".join([head, *args])

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

            attrs = model_attrs(self.umlip, self.device)
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
        if self.kind == "emt":
            attrs.update(licence="LGPL-2.1-or-later (ASE)",
                         url="https://wiki.fysik.dtu.dk/ase/ase/calculators/emt.html")
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


# -- what a calculator declares before it runs ---------------------------------------------

@dataclass(frozen=True, slots=True)
class Declaration:
    """What a kind of calculator says about itself without running: the elements it has
    parameters for (None: it does not say, so no pre-flight check) and its parameter files
    (what a model name is bound to, by sha256; empty when the parameters live in code)."""

    elements: frozenset[str] | None = None
    files: tuple[Path, ...] = ()


# kind -> its declaration. A new kind of calculator adds its entry here (one function of the
# spec); a kind without one declares the files among its key=value arguments and no elements.
DECLARERS: dict[str, Callable[[CalculatorSpec], Declaration]] = {}


def declaration(spec: CalculatorSpec) -> Declaration:
    return DECLARERS.get(spec.kind, _declare_module)(spec)


def _is_file(value: Any) -> bool:
    try:
        return isinstance(value, str) and "\n" not in value and Path(value).is_file()
    except OSError:  # a name too long for the filesystem is not a file
        return False


def _declare_module(spec: CalculatorSpec) -> Declaration:
    return Declaration(files=tuple(Path(v) for _, v in sorted(spec.kwargs.items()) if _is_file(v)))


def _declare_emt(spec: CalculatorSpec) -> Declaration:
    from ase.calculators.emt import parameters

    return Declaration(elements=frozenset(parameters))


def nep_elements(path: Path) -> frozenset[str] | None:
    """Elements of a NEP model file: its first line is ``nep4[_zbl] N El1 ... ElN``."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            words = fh.readline().split()
    except OSError:
        return None
    if len(words) < 2 or not words[0].startswith("nep") or not words[1].isdigit():
        return None
    n = int(words[1])
    return frozenset(words[2:2 + n]) if len(words) >= 2 + n else None


def _declare_nep(spec: CalculatorSpec) -> Declaration:
    path = Path(spec.target)
    return Declaration(elements=nep_elements(path), files=(path,))


def _declare_eam(spec: CalculatorSpec) -> Declaration:
    folder = Path(spec.target)
    if folder.is_dir():  # one DIR/<El>.eam.alloy per element (see _eam_provider)
        files = tuple(sorted(folder.glob("*.eam*")))
        return Declaration(frozenset(p.name.split(".")[0] for p in files
                                     if p.name.endswith(".eam.alloy")), files)
    files = tuple(Path(t) for t in spec.target.split(","))
    elements: set[str] = set()
    for p in files:
        if not p.name.endswith((".eam.alloy", ".eam.fs")) or not p.is_file():
            return Declaration(None, files)  # a funcfl .eam names its element by Z only
        elements.update(setfl_elements(p))
    return Declaration(frozenset(elements), files)


def _declare_umlip(spec: CalculatorSpec) -> Declaration:
    """A uMLIP's embedded elements and its weights file (loads the model once per process;
    the provider reuses it)."""
    from ingest import umlip

    return Declaration(*umlip.declared(spec.umlip, spec.device))


DECLARERS.update(emt=_declare_emt, nep=_declare_nep, eam=_declare_eam, umlip=_declare_umlip)


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
