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
