"""A cell of a benchmark run: one (method, dataset, seed) replay of one store version, and its outcome.

A :class:`CellJob` is everything a process needs to replay one cell (picklable, so local processes and
SLURM array tasks get the same object); :func:`run_cell` replays it and writes its file
(:mod:`benchmark.results`), :func:`run_cells` is the work of one SLURM array task. Imports neither torch
nor timm; torch is imported only by the processes that build torch-based methods.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.registry import make_optimizer, spec
from benchmark.replay import replay
from benchmark.results import cell_path, trajectory_frame, write_cell
from benchmark.task import load_tasks, make_context


@dataclass(frozen=True)
class CellJob:
    """Everything a process needs to replay one cell (picklable)."""

    store: str
    version: str
    method: str
    options: dict[str, Any]
    dataset: str
    seed: int
    budget_s: float
    overhead: str
    workers: int
    out: str
    folds: int = 5
    context_seed: int = 42
    cache_dir: str | None = None

    @property
    def path(self) -> Path:
        """The cell's result file."""
        return cell_path(self.out, self.version, self.method, self.dataset, self.seed)


@dataclass(frozen=True)
class CellOutcome:
    """What became of a cell: rows written, wall seconds, final regret, or the error."""

    job: CellJob
    rows: int = 0
    wall_s: float = 0.0
    final_regret: float = float("nan")
    error: str | None = None


def run_cell(job: CellJob) -> CellOutcome:
    """Replays one cell and writes its file; errors are returned, not raised."""
    t0 = time.perf_counter()
    try:
        (task,) = load_tasks(job.store, job.version, [job.dataset])
        context = None
        if spec(job.method).needs_context:
            context = make_context(job.store, job.version, job.dataset, job.folds, job.context_seed, job.cache_dir)
        optimizer = make_optimizer(job.method, task.view, job.seed, context, **job.options)
        trajectory = replay(task, optimizer, job.budget_s, overhead=job.overhead, n_workers=job.workers)
        write_cell(job.path, trajectory_frame(trajectory, job.method, job.seed))
        return CellOutcome(job, trajectory.time.size, time.perf_counter() - t0, trajectory.final_regret)
    except Exception as e:  # one failing cell never stops a run
        where = traceback.extract_tb(e.__traceback__)[-1]
        message = f"{type(e).__name__}: {e} (at {Path(where.filename).name}:{where.lineno})"
        return CellOutcome(job, wall_s=time.perf_counter() - t0, error=message)


def run_cells(jobs: list[CellJob]) -> list[CellOutcome]:
    """Replays cells one after the other, skipping finished ones (the work of one SLURM array task)."""
    return [CellOutcome(j) if j.path.is_file() else run_cell(j) for j in jobs]
