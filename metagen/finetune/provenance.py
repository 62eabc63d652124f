"""Provenance of a run (package versions, hardware) and its memory peak."""

from __future__ import annotations

import os
import platform
import resource
import sys
from importlib import metadata

import torch

PACKAGES = ("metagen", "torch", "torchvision", "timm", "numpy", "pillow", "huggingface_hub", "safetensors")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a curve (those installed), plus Python's."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if torch.version.cuda:
        out["cuda"] = str(torch.version.cuda)
    return out


def hardware(device: torch.device) -> str:
    """The device a run trains on, e.g. ``'NVIDIA H100 80GB HBM3'`` or ``'cpu x2 (2 threads)'``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"cpu x{cpus} ({torch.get_num_threads()} threads, {platform.machine()})"


def reset_peak_memory(device: torch.device) -> None:
    """Start a new accelerator peak (the process RSS peak on CPU cannot be reset)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> int:
    """Bytes: CUDA ``max_memory_allocated`` since the last reset, or the process's peak RSS on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
