"""A cell of a benchmark run: one (method, dataset, seed) replay of one store version, and its outcome.

A :class:`CellJob` is everything a process needs to replay one cell (picklable, so local processes and
SLURM array tasks get the same object); :func:`run_cell` replays it and writes its file
(:mod:`benchmark.results`), :func:`run_cells` is the work of one SLURM array task. A cell still running after
:data:`PROGRESS_EVERY_S` wall seconds prints a progress line that often. Imports neither torch nor timm; torch
is imported only by the processes that build torch-based methods.
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

PROGRESS_EVERY_S = 30.0
"""A cell still running after this many wall seconds prints a progress line this often."""


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
    progress_every_s: float = PROGRESS_EVERY_S

    @property
    def path(self) -> Path:
        """The cell's result file."""
        return cell_path(self.out, self.version, self.method, self.dataset, self.seed)


@dataclass(frozen=True)
class CellOutcome:
    """What became of a cell: rows written, asks, wall seconds, final regret, or the error.

    ``note`` describes settings worth printing next to the cell (e.g. a GP method's refit schedule).
    """

    job: CellJob
    rows: int = 0
    wall_s: float = 0.0
    final_regret: float = float("nan")
    error: str | None = None
    steps: int = 0
    note: str = ""

    def line(self) -> str:
        """One line for the log: the cell, its wall time and its result or error."""
        j = self.job
        head = f"{j.method} / {j.dataset} / seed {j.seed}" + (f" [{self.note}]" if self.note else "")
        if self.error is not None:
            return f"{head}: FAILED after {self.wall_s:.1f} s: {self.error}"
        regret = f"final regret {self.final_regret:.4f}"
        return f"{head}: {self.steps} steps, {self.rows} epochs in {self.wall_s:.1f} s, {regret}"


class _Progress:
    """Prints a line every ``every_s`` wall seconds of a cell: asks so far and simulated time."""

    def __init__(self, job: CellJob, budget_s: float, note: str):
        self.job, self.budget_s, self.note = job, budget_s, note
        self.t0 = time.perf_counter()
        self.next = self.t0 + job.progress_every_s

    def __call__(self, steps: int, simulated_s: float) -> None:
        now = time.perf_counter()
        if self.job.progress_every_s > 0 and now >= self.next:
            self.next = now + self.job.progress_every_s
            j = self.job
            note = f" [{self.note}]" if self.note else ""
            print(f"  ... {j.method} / {j.dataset} / seed {j.seed}{note}: step {steps}, simulated "
                  f"{simulated_s:.0f} / {self.budget_s:.0f} s, wall {now - self.t0:.0f} s", flush=True)  # fmt: skip


def optimizer_note(optimizer: Any) -> str:
    """Settings of an optimizer worth printing: a GP method's refit schedule (``""`` otherwise)."""
    label = getattr(getattr(optimizer, "schedule", None), "label", None)
    return f"schedule={label()}" if callable(label) else ""


def run_cell(job: CellJob) -> CellOutcome:
    """Replays one cell and writes its file; errors are returned, not raised."""
    t0 = time.perf_counter()
    note = ""
    try:
        (task,) = load_tasks(job.store, job.version, [job.dataset])
        context = None
        if spec(job.method).needs_context:
            context = make_context(job.store, job.version, job.dataset, job.folds, job.context_seed, job.cache_dir)
        optimizer = make_optimizer(job.method, task.view, job.seed, context, **job.options)
        note = optimizer_note(optimizer)
        progress = _Progress(job, job.budget_s, note)
        built_s = time.perf_counter() - t0
        if 0 < job.progress_every_s <= built_s:  # e.g. Quick-Tune meta-training on a cache miss
            cell = f"{job.method} / {job.dataset} / seed {job.seed}"
            print(f"  ... {cell}: optimizer built in {built_s:.0f} s", flush=True)
        trajectory = replay(
            task, optimizer, job.budget_s, overhead=job.overhead, n_workers=job.workers, progress=progress
        )
        write_cell(job.path, trajectory_frame(trajectory, job.method, job.seed))
        steps = int(trajectory.step.max()) + 1 if trajectory.step.size else 0
        return CellOutcome(
            job, trajectory.time.size, time.perf_counter() - t0, trajectory.final_regret, steps=steps, note=note
        )
    except Exception as e:  # one failing cell never stops a run
        where = traceback.extract_tb(e.__traceback__)[-1]
        message = f"{type(e).__name__}: {e} (at {Path(where.filename).name}:{where.lineno})"
        return CellOutcome(job, wall_s=time.perf_counter() - t0, error=message, note=note)


def run_cells(jobs: list[CellJob]) -> list[CellOutcome]:
    """Replays cells one after the other, skipping finished ones (the work of one SLURM array task)."""
    return [CellOutcome(j) if j.path.is_file() else run_cell(j) for j in jobs]
