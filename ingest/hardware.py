"""What machine a timing ran on: CPU model and cores, and the accelerator when there is one.

Detection never needs torch: it is used only when it is already imported (a torch calculator
brought it in) or when a CUDA device was asked for and torch can be imported. The hardware
*class* label is what Pareto fronts group by, e.g. ``"AMD EPYC x2 cores"`` or
``"1x NVIDIA H100 80GB HBM3"``.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Hardware:
    cpu_model: str | None
    cpu_cores: int | None
    device_model: str | None = None  # the accelerator's name; None on CPU runs
    device_count: int | None = None

    @property
    def label(self) -> str:
        """The hardware class: accelerator count and model, else CPU model and cores."""
        if self.device_model:
            return f"{self.device_count or 1}x {self.device_model}"
        if self.device_count:  # a log that counts its GPUs but does not name them
            return f"{self.device_count}x GPU (model not stated)"
        return f"{self.cpu_model or 'unknown CPU'} x{self.cpu_cores or '?'} cores"

    def columns(self) -> dict[str, Any]:
        """The ``timings`` columns this fills."""
        return {
            "hardware": self.label, "device_model": self.device_model,
            "device_count": self.device_count, "cpu_model": self.cpu_model,
            "cpu_cores": self.cpu_cores,
        }


def cpu_model() -> str | None:
    """The CPU's marketing name (Linux /proc/cpuinfo, else the platform module)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def usable_cores() -> int | None:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def torch_module(device: str) -> Any | None:
    """torch, if it is already loaded or a CUDA device is wanted and it can be imported."""
    if "torch" in sys.modules:
        return sys.modules["torch"]
    if device.startswith("cuda") and importlib.util.find_spec("torch") is not None:
        import torch

        return torch
    return None


def detect_hardware(device: str = "cpu") -> Hardware:
    """The machine this process runs on; ``device`` is the one the calculator computes on."""
    cpu = Hardware(cpu_model=cpu_model(), cpu_cores=usable_cores())
    if not device.startswith("cuda"):
        return cpu
    torch = torch_module(device)
    if torch is None or not torch.cuda.is_available():
        return cpu
    index = torch.device(device).index or 0
    return Hardware(
        cpu_model=cpu.cpu_model, cpu_cores=cpu.cpu_cores,
        device_model=torch.cuda.get_device_name(index), device_count=1,
    )


def synchroniser(device: str):
    """A function that waits for queued device work (a no-op on CPU or without torch)."""
    torch = torch_module(device)
    if device.startswith("cuda") and torch is not None and torch.cuda.is_available():
        return torch.cuda.synchronize
    return lambda: None


def reset_peak_memory(device: str) -> None:
    torch = torch_module(device)
    if device.startswith("cuda") and torch is not None and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb(device: str) -> float | None:
    """Peak device memory allocated by torch since the last reset (MiB); None off-GPU."""
    torch = torch_module(device)
    if device.startswith("cuda") and torch is not None and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def max_rss_mb() -> float | None:
    """The process's peak resident memory so far (MiB), where the OS reports it."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


# -- what a LAMMPS log says about its hardware ----------------------------------------------------

# LAMMPS prints its accelerator set-up in a few fixed phrasings (src/KOKKOS/kokkos.cpp,
# lib/gpu/lal_device.cpp, src/INTEL/fix_intel.cpp, src/OPENMP/fix_omp.cpp); a package may also be
# seen only through its command (`package gpu 2`) or its style suffix (`pair eam/kk`).
_KOKKOS_BANNER = re.compile(r"^KOKKOS mode(?: with Kokkos version \S+)? is enabled")
_KOKKOS_GPUS = re.compile(r"^\s*will use up to (\d+) GPU\(s\) per node")
_GPU_DEVICE = re.compile(r"^\s*Device (\d+): (.+?), \d+ CUs,.*?\((\w+) Precision\)")
_INTEL_BANNER = re.compile(r"^Using Intel (?:Package without Coprocessor|Coprocessor)")
_INTEL_PRECISION = re.compile(r"^Precision: (\w+)")
_OMP_THREADS = re.compile(r"^\s*using (\d+) OpenMP thread\(s\) per MPI task")
_PACKAGE_CMD = re.compile(r"^package\s+(kokkos|gpu|omp|intel)\b(?:\s+(\d+))?")
_STYLE_SUFFIX = re.compile(r"^\s*\(\d+\) (?:pair|fix|compute) \S+/(kk|gpu|omp|intel)\b")
_PACKAGE_NAMES = {"kokkos": "KOKKOS", "kk": "KOKKOS", "gpu": "GPU", "omp": "OPENMP",
                  "intel": "INTEL"}


@dataclass(frozen=True, slots=True)
class LammpsAccelerator:
    """What a LAMMPS log states about acceleration: the package and the devices it used."""

    package: str | None = None  # KOKKOS | GPU | OPENMP | INTEL
    device_model: str | None = None  # only the GPU package prints the device's name
    device_count: int | None = None  # GPUs per node as the log states it
    precision: str | None = None  # "mixed", "double", "single" where the package prints it
    omp_threads: int | None = None


def lammps_accelerator(lines: list[str]) -> LammpsAccelerator:
    """The accelerator package and devices a LAMMPS log reports (an empty one for a plain CPU run).

    KOKKOS says "will use up to N GPU(s) per node" but never the device's name (``--hardware``
    names it); the GPU package prints one "Device k: NAME, ... (Mixed Precision)" line per device.
    A log's GPU count is per node: a multi-node run is not visible in it.
    """
    package = model = precision = None
    devices: set[int] = set()
    kokkos_gpus = package_gpus = threads = None
    for line in lines:
        if _KOKKOS_BANNER.match(line):
            package = "KOKKOS"
        elif mt := _KOKKOS_GPUS.match(line):
            kokkos_gpus = int(mt.group(1))
        elif mt := _GPU_DEVICE.match(line):
            devices.add(int(mt.group(1)))
            model = model or mt.group(2).strip()
            precision = precision or mt.group(3).lower()
            package = package or "GPU"
        elif _INTEL_BANNER.match(line):
            package = package or "INTEL"
        elif (mt := _INTEL_PRECISION.match(line)) and package == "INTEL":
            precision = precision or mt.group(1).lower()
        elif mt := _OMP_THREADS.match(line):
            threads = int(mt.group(1))
        elif mt := _PACKAGE_CMD.match(line):
            package = package or _PACKAGE_NAMES[mt.group(1)]
            if mt.group(1) == "gpu" and mt.group(2):
                package_gpus = int(mt.group(2))
        elif mt := _STYLE_SUFFIX.match(line):
            package = package or _PACKAGE_NAMES[mt.group(1)]
    count = None
    if package == "KOKKOS":
        count = kokkos_gpus or None  # "up to 0 GPU(s)": KOKKOS on CPU threads
    elif package == "GPU":
        count = len(devices) or package_gpus or None
    return LammpsAccelerator(package, model if package == "GPU" else None, count, precision,
                             threads)
