"""A cell of a benchmark run: one (method, dataset, seed) replay of one store version, and its outcome.

A :class:`CellJob` is everything a process needs to replay one cell (picklable, so local processes and
SLURM array tasks get the same object); :func:`run_cell` replays it and writes its file
(:mod:`benchmark.results`), :func:`run_lockstep` replays several cells at once with their GP fits batched,
:func:`run_cells` is the work of one SLURM array task. A cell still running after
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
    """Everything a process needs to replay one cell (picklable).

    ``method`` is the name the cell is stored and plotted under; ``base`` the registered method it runs when
    ``method`` names a labelled variant (``""``: ``method`` itself is registered).
    """

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
    base: str = ""

    @property
    def registered(self) -> str:
        """The registered method the cell builds."""
        return self.base or self.method

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
    """Settings of an optimizer worth printing (``""`` if none): a GP method's refit schedule and, for Quick-Tune,
    which meta-training its surrogate starts from (the default differs from the reference code's:
    docs/quicktune-deviations.md)."""
    label = getattr(getattr(optimizer, "schedule", None), "label", None)
    notes = [f"schedule={label()}"] if callable(label) else []
    meta = getattr(optimizer, "meta_label", None)
    return ", ".join(notes + ([f"meta={meta}"] if meta else []))


def optimizer_stats(optimizer: Any) -> dict[str, int]:
    """The optimizer's counters, stored with its cell (``stats()`` of e.g. BOHB; ``{}`` for optimizers without)."""
    stats = getattr(optimizer, "stats", None)
    return {str(k): int(v) for k, v in stats().items()} if callable(stats) else {}


def run_cell(job: CellJob) -> CellOutcome:
    """Replays one cell and writes its file; errors are returned, not raised."""
    t0 = time.perf_counter()
    built = _build(job)
    if isinstance(built, CellOutcome):
        return built
    return _replay(built, t0)


@dataclass
class _Built:
    """A cell ready to replay: its task, optimizer, note and progress printer."""

    job: CellJob
    task: Any
    optimizer: Any
    note: str
    progress: _Progress


def _failed(job: CellJob, e: Exception, t0: float, note: str = "") -> CellOutcome:
    where = traceback.extract_tb(e.__traceback__)[-1]
    message = f"{type(e).__name__}: {e} (at {Path(where.filename).name}:{where.lineno})"
    return CellOutcome(job, wall_s=time.perf_counter() - t0, error=message, note=note)


def _build(job: CellJob) -> _Built | CellOutcome:
    """Loads a cell's task and builds its optimizer (or the outcome of the error that stopped it)."""
    t0 = time.perf_counter()
    note = ""
    try:
        (task,) = load_tasks(job.store, job.version, [job.dataset])
        context = None
        if spec(job.registered).needs_context:
            context = make_context(job.store, job.version, job.dataset, job.folds, job.context_seed, job.cache_dir)
        optimizer = make_optimizer(job.registered, task.view, job.seed, context, **job.options)
        note = optimizer_note(optimizer)
        progress = _Progress(job, job.budget_s, note)
        built_s = time.perf_counter() - t0
        if 0 < job.progress_every_s <= built_s:  # e.g. Quick-Tune meta-training on a cache miss
            cell = f"{job.method} / {job.dataset} / seed {job.seed}"
            print(f"  ... {cell}: optimizer built in {built_s:.0f} s", flush=True)
        return _Built(job, task, optimizer, note, progress)
    except Exception as e:  # one failing cell never stops a run
        return _failed(job, e, t0, note)


def _replay(built: _Built, t0: float) -> CellOutcome:
    """Replays a built cell and writes its file; errors are returned, not raised."""
    job, optimizer, note = built.job, built.optimizer, built.note
    try:
        trajectory = replay(
            built.task, optimizer, job.budget_s, overhead=job.overhead, n_workers=job.workers, progress=built.progress
        )
        stats = optimizer_stats(optimizer)
        write_cell(job.path, trajectory_frame(trajectory, job.method, job.seed), stats)
        if "model_proposals" in stats:
            note = ", ".join(
                filter(None, [note, f"model proposals {stats['model_proposals']} of {stats['proposals']}"])
            )
        steps = int(trajectory.step.max()) + 1 if trajectory.step.size else 0
        return CellOutcome(
            job, trajectory.time.size, time.perf_counter() - t0, trajectory.final_regret, steps=steps, note=note
        )
    except Exception as e:  # one failing cell never stops a run
        return _failed(job, e, t0, note)


def lockstep_groups(jobs: list[CellJob]) -> list[list[CellJob]]:
    """Cells grouped for :func:`run_lockstep`, in order of first appearance: all torch-based cells (the GP
    methods) of one dataset together, every other cell alone.

    Within a group, fits of one architecture and learning rate share a batch (e.g. the seeds of DyHPO, and
    the seeds of Quick-Tune, -C and -G, whose meta-trained nets are alike). Cells with measured overhead stay
    alone: in lockstep a replay's wall time includes the others' fits.
    """
    groups: dict[tuple, list[CellJob]] = {}
    for j in jobs:
        together = spec(j.registered).needs_torch and j.overhead != "measured"
        key = (j.store, j.version, j.dataset) if together else (j.method, j.dataset, j.seed)
        groups.setdefault(key, []).append(j)
    return list(groups.values())


def run_lockstep(jobs: list[CellJob]) -> list[CellOutcome]:
    """Replays cells together, one thread each, with their GP fits batched (``surrogates.batched``).

    Every cell is built first (one after the other: a meta-trained model is trained or loaded once and then
    comes from the cache), then all are replayed at once; each surrogate fit waits until every live replay
    waits on one, and they run as one batched fit. The trajectories equal the cells' :func:`run_cell` ones up
    to floating-point rounding of the fits (docs/quicktune-deviations.md). Errors are returned, not raised.
    A cell's wall time is the group's.
    """
    t0 = time.perf_counter()
    built = [_build(j) for j in jobs]
    ready = [b for b in built if isinstance(b, _Built)]
    if len(ready) <= 1:
        return [b if isinstance(b, CellOutcome) else _replay(b, t0) for b in built]
    import threading

    from surrogates.batched import FitBatcher

    batcher = FitBatcher(len(ready))
    outcomes: dict[int, CellOutcome] = {}

    def work(b: _Built) -> None:
        with batcher.member():
            outcomes[id(b)] = _replay(b, t0)

    threads = [threading.Thread(target=work, args=(b,), name=f"cell-{b.job.seed}") for b in ready]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [b if isinstance(b, CellOutcome) else outcomes[id(b)] for b in built]


def run_cells(jobs: list[CellJob]) -> list[CellOutcome]:
    """Replays cells one after the other, skipping finished ones (the work of one SLURM array task)."""
    return [CellOutcome(j) if j.path.is_file() else run_cell(j) for j in jobs]
