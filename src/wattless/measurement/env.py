"""The machine and library versions a measurement was taken with, for the record's ``env`` key."""

import os
import platform
from importlib import metadata

import torch

from .meters import detect_meter

_LIBRARIES = ("torch", "onnxruntime", "onnx", "numpy")


def collect_env(threads: int | None = None) -> dict:
    """CPU, core count, thread count, OS and library versions; JSON-serialisable, nothing time-based.

    Args:
        threads: the thread count the measurement used; None records torch's current intra-op count.

    Returns:
        ``{"cpu", "logical_cores", "threads", "os", "python", "torch", "onnxruntime", "onnx", "numpy",
        "energy_meter"}``; a library that is not installed is None. ``energy_meter`` names the CPU energy
        meter the record's energy is measured with ("rapl"), or is "none": energy is estimated.
    """
    return {
        "cpu": cpu_model_name(),
        "logical_cores": os.cpu_count(),
        "threads": torch.get_num_threads() if threads is None else threads,
        "os": platform.platform(),
        "python": platform.python_version(),
        **{name: _library_version(name) for name in _LIBRARIES},
        "energy_meter": detect_meter().name,
    }


def cpu_model_name() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux x86), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _library_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
