"""What the SLURM cluster offers (``sinfo``) and which jobs of a sweep are still alive (``squeue``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass

SINFO_FORMAT = "%P|%c|%m|%G|%l"
"""``sinfo -h -o`` format: partition (default marked ``*``), CPUs, memory (MB), GRES, time limit per node group."""


@dataclass(frozen=True)
class PartitionInfo:
    """The largest node of a partition, as ``sinfo`` reports it.

    Attributes:
        name: partition name.
        max_cpus: CPUs of its largest node.
        max_mem_mb: memory (MB) of its largest node.
        max_gpus: GPUs (GRES ``gpu``) of its largest node; 0 if none.
        max_time_min: the partition's time limit in minutes; ``None`` = infinite.
        gres: the GRES strings seen.
    """

    name: str
    max_cpus: int
    max_mem_mb: int
    max_gpus: int
    max_time_min: int | None
    gres: str = ""


SLURM_COMMANDS = ("sbatch", "sinfo", "squeue", "srun")
"""The SLURM client commands a launch needs: ``sinfo`` and ``squeue`` for the checks, ``sbatch`` and ``srun`` for
submitit's ``SlurmExecutor`` (which refuses to start without ``srun`` on the PATH)."""


def missing_slurm_commands() -> list[str]:
    """The commands of :data:`SLURM_COMMANDS` that are not on the PATH (empty on a SLURM login node)."""
    return [c for c in SLURM_COMMANDS if shutil.which(c) is None]


def _leading_int(text: str) -> int:
    m = re.match(r"\s*(\d+)", text)
    return int(m.group(1)) if m else 0


def gpus_in_gres(gres: str) -> int:
    """GPUs per node in a GRES string, e.g. ``gpu:a100:4(S:0-1)`` -> 4, ``gpu:2,shard:8`` -> 2, ``(null)`` -> 0."""
    total = 0
    for item in re.split(r",(?![^(]*\))", gres):
        item = re.sub(r"\(.*?\)", "", item).strip()
        if not item.startswith("gpu"):
            continue
        fields = item.split(":")
        count = fields[-1] if len(fields) > 1 else "1"
        total += int(count) if count.isdigit() else 1
    return total


def parse_time_min(text: str) -> int | None:
    """A SLURM time (``infinite``, ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) in minutes.

    Seconds are rounded up; ``infinite``/``UNLIMITED`` is ``None``.

    Raises:
        ValueError: not a SLURM time.
    """
    t = text.strip()
    if t.lower() in ("infinite", "unlimited", "n/a"):
        return None
    days = 0
    if "-" in t:
        d, t = t.split("-", 1)
        days = int(d)
        parts = [int(x) for x in t.split(":")]
        h, m, s = [*parts, 0, 0][:3]
    else:
        parts = [int(x) for x in t.split(":")]
        if len(parts) == 1:
            h, m, s = 0, parts[0], 0
        elif len(parts) == 2:
            h, m, s = 0, parts[0], parts[1]
        elif len(parts) == 3:
            h, m, s = parts
        else:
            raise ValueError(f"not a SLURM time: {text!r}")
    return days * 1440 + h * 60 + m + (1 if s > 0 else 0)


def parse_sinfo(text: str) -> tuple[dict[str, PartitionInfo], str | None]:
    """Partitions (largest node of each) and the default partition from ``sinfo -h -o SINFO_FORMAT`` output."""
    acc: dict[str, dict] = {}
    default = None
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5:
            continue
        name, cpus, mem, gres, limit = (f.strip() for f in fields)
        if name.endswith("*"):
            name = name[:-1]
            default = name
        a = acc.setdefault(name, {"cpus": 0, "mem": 0, "gpus": 0, "time": 0, "gres": set()})
        a["cpus"] = max(a["cpus"], _leading_int(cpus))
        a["mem"] = max(a["mem"], _leading_int(mem))
        a["gpus"] = max(a["gpus"], gpus_in_gres(gres))
        if gres and gres != "(null)":
            a["gres"].add(gres)
        t = parse_time_min(limit)
        a["time"] = None if t is None or a["time"] is None else max(a["time"], t)
    parts = {
        n: PartitionInfo(n, a["cpus"], a["mem"], a["gpus"], a["time"], ",".join(sorted(a["gres"])))
        for n, a in acc.items()
    }
    return parts, default


def query_partitions(timeout_s: float = 30.0) -> tuple[dict[str, PartitionInfo], str | None]:
    """``sinfo``'s partitions and default partition.

    Raises:
        OSError / subprocess.SubprocessError: ``sinfo`` is missing, fails or hangs (the controller is unreachable).
    """
    out = subprocess.run(
        ["sinfo", "-h", "-o", SINFO_FORMAT], capture_output=True, text=True, timeout=timeout_s, check=True
    )
    return parse_sinfo(out.stdout)


ALIVE_STATES = "PENDING,RUNNING,CONFIGURING,REQUEUED,REQUEUE_HOLD,REQUEUE_FED,SUSPENDED,RESIZING"
"""Job states that may still train (``COMPLETING`` jobs are past their last run)."""


def alive_jobs(job_name: str, timeout_s: float = 30.0) -> list[str]:
    """Ids of this user's queued or running jobs with this name (``squeue``); empty if ``squeue`` fails."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "--me", "-n", job_name, "-t", ALIVE_STATES, "-o", "%i"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def cancel_jobs(job_name: str, timeout_s: float = 60.0) -> list[str]:
    """Cancels this user's alive jobs with this name (``scancel``) and waits until ``squeue`` shows none;
    returns the ids it cancelled.

    Raises:
        TimeoutError: some are still alive after ``timeout_s`` seconds.
    """
    ids = alive_jobs(job_name)
    if not ids:
        return []
    subprocess.run(["scancel", *ids], capture_output=True, text=True, timeout=timeout_s, check=False)
    end = time.monotonic() + timeout_s
    while alive := alive_jobs(job_name):
        if time.monotonic() > end:
            raise TimeoutError(
                f"SLURM jobs {', '.join(alive)} ({job_name}) are still alive {timeout_s:.0f} s after scancel"
            )
        time.sleep(1.0)
    return ids
