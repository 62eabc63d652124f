"""Provenance of a run (package versions, hardware) and its memory peak."""

from __future__ import annotations

import os
import platform
import resource
import sys
from importlib import metadata
from pathlib import Path

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


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo (e.g. ``'Intel(R) Xeon(R) Processor'``), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def hardware(device: torch.device, threads: int | None = None) -> str:
    """The device a run trains on, e.g. ``'NVIDIA H100 80GB HBM3'`` or
    ``'cpu x2 (1 threads, x86_64, Intel(R) Xeon(R) Processor)'``: the CPUs this process may use, the torch
    threads it trained with (``threads``; default: the current setting), the architecture and the CPU model,
    since CPU-second costs depend on it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = torch.get_num_threads() if threads is None else threads
    return f"cpu x{cpus} ({threads} threads, {platform.machine()}, {cpu_model()})"


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
