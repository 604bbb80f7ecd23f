"""VASP outputs (``vasprun.xml``, ``OUTCAR``, gzip-compressed or not) through ASE.

Frames: every ionic step ASE reads (``ase.io.iread(path, ":")``), with its calculator results.
ASE's ``energy`` is VASP's energy(sigma -> 0) and ``free_energy`` is TOTEN; both are stored.
ASE already converts VASP's stress (kbar, positive = compressive) to eV/Å^3 with ASE's sign;
``warehouse.units.ase_stress_to_gpa`` takes it from there (the units test proves the chain
against an independent read of the kbar lines).

Level of theory: read from the run itself (the ``<incar>``/``<parameters>``/``<atominfo>``
blocks of vasprun.xml, or the parameter echo and POTCAR lines of OUTCAR): functional (METAGGA,
then GGA, then the POTCAR family), cutoff (ENCUT), spin (ISPIN), dispersion (IVDW), POTCARs, VASP
version. The default name is like ``VASP-PBE-520eV``.
"""

from __future__ import annotations

import gzip
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from ingest.atoms import frame_from_atoms, validate_frame
from ingest.textio import reader_guard
from warehouse.errors import IngestError, missing_file
from warehouse.records import Frame

GGA_NAMES = {"PE": "PBE", "PS": "PBEsol", "RP": "RPBE", "91": "PW91", "AM": "AM05", "CA": "LDA",
             "B3": "B3LYP", "BO": "optB88", "MK": "optB86b", "RE": "revPBE", "OR": "optPBE"}
IVDW_NAMES = {"1": "D2", "10": "D2", "11": "D3", "12": "D3BJ", "13": "D4", "2": "TS", "20": "TS",
              "21": "TS-H", "202": "MBD", "4": "dDsC"}


@dataclass
class VaspSettings:
    """What the run says about its level of theory."""

    version: str | None = None
    functional: str | None = None
    encut: float | None = None
    spin: str | None = None
    dispersion: str | None = None
    potcars: list[str] = field(default_factory=list)
    kspacing: str | None = None

    def name(self) -> str:
        parts = ["VASP", self.functional or "unknown"]
        if self.dispersion:
            parts.append(self.dispersion)
        if self.encut:
            parts.append(f"{self.encut:g}eV")
        return "-".join(parts)

    def attrs(self) -> dict[str, Any]:
        return {
            "code": "VASP", "code_version": self.version, "functional": self.functional,
            "cutoff_ev": self.encut, "spin": self.spin, "dispersion": self.dispersion,
            "pseudopotentials": ", ".join(dict.fromkeys(self.potcars))[:255] or None,
            "kpoint_density": self.kspacing and f"KSPACING {self.kspacing}",
        }


def is_vasp(path: str | Path) -> bool:
    name = Path(path).name.lower().removesuffix(".gz")
    return name.startswith(("vasprun", "outcar")) and (name.endswith(".xml") or "outcar" in name)


def _open_text(path: str):
    return gzip.open(path, "rt", errors="replace") if path.endswith(".gz") else open(path, errors="replace")


def _functional(gga: str | None, metagga: str | None, lhfcalc: str | None, potcars: list[str]) -> str | None:
    if metagga and metagga.strip().upper() not in ("--", "F", "NONE", ""):
        return metagga.strip().upper().replace("R2SCAN", "r2SCAN")
    base = None
    if gga and gga.strip() not in ("--", ""):
        base = GGA_NAMES.get(gga.strip().upper(), gga.strip())
    elif potcars:
        base = "PBE" if any("PBE" in p for p in potcars) else "LDA"
    if lhfcalc and lhfcalc.strip().upper().startswith("T"):
        base = f"hybrid({base})"
    return base


def read_vasprun_settings(path: str) -> VaspSettings:
    """Settings from the head of vasprun.xml (stops before the first ionic step)."""
    params: dict[str, str] = {}
    incar: dict[str, str] = {}
    potcars: list[str] = []
    version = None
    section = None
    try:
        with _open_text(path) as fh:
            for event, el in ET.iterparse(fh, events=("start", "end")):
                if event == "start":
                    if el.tag in ("incar", "parameters", "atominfo"):
                        section = el.tag
                    elif el.tag == "calculation":
                        break
                    continue
                if el.tag == "i" and el.get("name") == "version" and version is None:
                    version = (el.text or "").strip()
                elif el.tag == "i" and el.get("name") and section in ("incar", "parameters"):
                    (incar if section == "incar" else params).setdefault(el.get("name"), (el.text or "").strip())
                elif el.tag == "rc" and section == "atominfo":
                    cells = [(c.text or "").strip() for c in el.findall("c")]
                    if len(cells) == 5 and ("PAW" in cells[4] or "US" in cells[4]):
                        potcars.append(cells[4])
                elif el.tag in ("incar", "parameters", "atominfo"):
                    section = None
    except ET.ParseError as exc:
        raise IngestError(f"not a readable vasprun.xml ({exc})", path=path) from exc

    def get(key: str) -> str | None:
        return incar.get(key, params.get(key))

    encut = get("ENCUT") or params.get("ENMAX")
    return VaspSettings(
        version=version, functional=_functional(get("GGA"), get("METAGGA"), get("LHFCALC"), potcars),
        encut=float(encut) if encut else None,
        spin={"1": "none", "2": "collinear"}.get((get("ISPIN") or "").strip()),
        dispersion=IVDW_NAMES.get((get("IVDW") or "").strip()) if get("IVDW") not in (None, "0") else None,
        potcars=potcars, kspacing=incar.get("KSPACING"),
    )


_OUTCAR_PATTERNS = {
    "version": re.compile(r"^\s*(vasp\.\S+)"),
    "potcar": re.compile(r"^\s*POTCAR:\s+(.+?)\s*$"),
    "ENCUT": re.compile(r"^\s*ENCUT\s*=\s*([-\d.]+)"),
    "GGA": re.compile(r"^\s*GGA\s*=\s*(\S+)"),
    "METAGGA": re.compile(r"^\s*METAGGA\s*=\s*(\S+)"),
    "IVDW": re.compile(r"^\s*IVDW\s*=\s*(\d+)"),
    "LHFCALC": re.compile(r"^\s*LHFCALC\s*=\s*(\S+)"),
    "ISPIN": re.compile(r"^\s*ISPIN\s*=\s*(\d+)"),
}


def read_outcar_settings(path: str) -> VaspSettings:
    """Settings from OUTCAR's header (the parameter echo before the first ionic step)."""
    found: dict[str, str] = {}
    potcars: list[str] = []
    with _open_text(path) as fh:
        for line in fh:
            if "Iteration" in line and "----" in line:
                break  # the first electronic step: the header is over
            for key, pattern in _OUTCAR_PATTERNS.items():
                if match := pattern.match(line):
                    if key == "potcar":
                        potcars.append(match.group(1))
                    else:
                        found.setdefault(key, match.group(1))
    return VaspSettings(
        version=found.get("version"),
        functional=_functional(found.get("GGA"), found.get("METAGGA"), found.get("LHFCALC"), potcars),
        encut=float(found["ENCUT"]) if "ENCUT" in found else None,
        spin={"1": "none", "2": "collinear"}.get(found.get("ISPIN", "")),
        dispersion=IVDW_NAMES.get(found["IVDW"]) if found.get("IVDW", "0") != "0" else None,
        potcars=potcars,
    )


def read_vasp_settings(path: str | Path) -> VaspSettings:
    path = str(path)
    if "vasprun" in Path(path).name.lower():
        return read_vasprun_settings(path)
    return read_outcar_settings(path)


@reader_guard
def parse_vasp(path: str | Path) -> Iterator[Frame]:
    """Yield every ionic step of a vasprun.xml or OUTCAR as a validated frame."""
    path = str(path)
    if not Path(path).is_file():
        raise missing_file(path)
    fmt = "vasp-xml" if "vasprun" in Path(path).name.lower() else "vasp-out"
    index = 0
    import ase.io  # deferred: ase.io pulls in scipy (~0.6 s), which only this reader needs

    reader = ase.io.iread(path, index=":", format=fmt)
    while True:
        try:
            atoms = next(reader)
        except StopIteration:
            break
        except Exception as exc:  # ASE raises many types for malformed VASP output
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise IngestError(f"cannot read VASP output ({type(exc).__name__}: {text[:300]})",
                              path=path, where=f"ionic step {index}") from exc
        yield validate_frame(frame_from_atoms(atoms, index), path)
        index += 1
    if index == 0:
        raise IngestError("no ionic steps found", path=path)
