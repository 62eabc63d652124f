"""Replaying cells on a SLURM cluster: one submitit job array, ``cells_per_job`` cells per array task.

``python -m benchmark.run ... executor=slurm slurm.partition=P`` plans the cells as usual, submits the
ones without a result file, and yields the outcomes of each array task as it ends. Each task writes its
cells' files itself (the same files as a local run, bit for bit), so a cancelled or failed task loses only
its unfinished cells: running the same command again submits just those.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from benchmark.cells import CellJob, CellOutcome, run_cells
from benchmark.config import SlurmConfig

T = TypeVar("T")

POLL_S = 2.0
"""Seconds between checks of the array's tasks."""


def absolute(job: CellJob) -> CellJob:
    """The cell with absolute store / out / cache paths (the job may start in another directory)."""

    def resolve(p: str | None) -> str | None:
        return None if p is None else str(Path(p).expanduser().resolve())

    return replace(job, store=str(resolve(job.store)), out=str(resolve(job.out)), cache_dir=resolve(job.cache_dir))


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in consecutive groups of at most ``size``."""
    if size < 1:
        raise ValueError(f"slurm.cells_per_job must be at least 1, got {size}")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def slurm_parameters(cfg: SlurmConfig, n_cells: int, job_name: str) -> dict[str, Any]:
    """Keyword arguments of ``submitit.SlurmExecutor.update_parameters`` for a task of ``n_cells`` cells."""
    if cfg.time_min_per_cell <= 0 or cfg.cpus_per_task < 1 or cfg.mem_gb <= 0:
        raise ValueError(
            f"slurm.time_min_per_cell ({cfg.time_min_per_cell}), slurm.cpus_per_task ({cfg.cpus_per_task}) and "
            f"slurm.mem_gb ({cfg.mem_gb}) must be positive"
        )
    return cfg.sbatch(
        job_name=job_name,
        time_min=max(1, math.ceil(n_cells * cfg.time_min_per_cell)),
        setup=[f"export OMP_NUM_THREADS={cfg.cpus_per_task}", *cfg.setup],
    )


def run_on_slurm(todo: list[CellJob], cfg: SlurmConfig, out: str | Path) -> Iterator[CellOutcome]:
    """Submit ``todo`` as one job array and yield every cell's outcome, task by task, as the tasks end.

    A task that fails as a whole (cancelled, out of memory, node failure) yields an error outcome for each
    of its cells that has no result file; the message names the job and its log.
    """
    from submitit import SlurmExecutor
    from submitit.helpers import as_completed

    groups = chunks([absolute(j) for j in todo], cfg.cells_per_job)
    folder = Path(cfg.folder) if cfg.folder else Path(out) / "_slurm"
    executor = SlurmExecutor(folder=folder.resolve() / "%j", max_num_timeout=0)
    executor.update_parameters(**slurm_parameters(cfg, len(groups[0]), cfg.job_name or "benchmark-run"))
    submitted = executor.map_array(run_cells, groups)
    array_id = submitted[0].job_id.split("_")[0]
    print(f"[benchmark.run] {len(todo)} cells in {len(groups)} array tasks of job {array_id}; logs: {folder}")
    group_of = {job.job_id: group for job, group in zip(submitted, groups, strict=True)}
    for job in as_completed(submitted, poll_frequency=POLL_S):
        try:
            outcomes = job.result()
        except Exception as e:  # the task died: its unfinished cells fail, the finished ones count
            last = (str(e).strip().splitlines() or [""])[-1][:300]
            why = f"SLURM job {job.job_id} failed ({type(e).__name__}: {last}); log: {job.paths.stderr}"
            outcomes = [CellOutcome(j) if j.path.is_file() else CellOutcome(j, error=why) for j in group_of[job.job_id]]
        yield from outcomes
